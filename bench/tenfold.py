"""The insights' and recommendations' reads at ten times a kept ledger's traffic (~100 M events
from the 10 M-event ledger), without generating a 100 M-event ledger (~40 GB, ~2 h here).

    .venv/bin/python -m bench.tenfold build --data COPY     # a copy: it is rewritten
    .venv/bin/python -m bench.tenfold time --data COPY --runs 5

``build`` scales what those reads read, as if every event of the period had been sent ten times
(copies 1..9 with new event ids, prompt hashes and users), then merges the tables
(``OPTIMIZE … FINAL``):

- the insight cells (``rollup_hour_insights``, migration 75): each cell's sums x 10 and its
  quantile and app states merged with nine copies of themselves, which is exactly what ten
  copies of every event give (the cells have no event id, prompt or user dimension): the same
  108 k cells, token states of 100 M events;
- the repeats and team repeats (migrations 77 and 71): nine copies of every row with new event
  ids and prompt hashes (each copy repeats its own prompts as the original does, never the
  original's, so 10x the rows);
- not scaled: the ledger (the reads touch it only at the period's partial-hour edges, which lie
  outside the data with this period), ``prompt_sightings`` (no timed read uses it: scoped reads by
  feature or operation do), and the spend rollups (governance, untagged and outcomes read them;
  the lean ones have every dimension value already, so ten times the events leave their rows as
  they are, but the full ones gain rows with new users: those insights' times here are the 10 M
  ones).

``time`` runs every insight over the whole period, the recommendations (one client, and the pool
of 4 the API and the CLI read through), team-scoped caching and the cell audits, ``runs`` times
each: median and p95 (nearest rank), with the load average.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.advice import cases, whole_period
from bench.common import percentile
from spendstream.insights import INSIGHTS, Context, run_insight
from spendstream.sinks.client import connect
from spendstream.sinks.insight_cells import CELLS_TABLE
from spendstream.sinks.prompt_sightings import REPEATS_TABLE
from spendstream.sinks.team_repeats import TEAM_REPEATS_TABLE

COPIES = 10
AGGREGATE = re.compile(r"AggregateFunction\((\w+)(\([^)]*\))?, [^)]+\)")


def _columns(client: Any, table: str) -> list[tuple[str, str]]:
    return client.query(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
        "AND table = {t:String} ORDER BY position",
        parameters={"t": table},
    ).result_rows


def cells_sql(client: Any) -> str:
    """Every cell of one day again: sums over ten copies of it, states merged ten times."""
    keys, chosen = [], []
    for name, kind in _columns(client, CELLS_TABLE):
        found = AGGREGATE.fullmatch(kind)
        if found:
            function, parameters = found.group(1), found.group(2) or ""
            chosen.append(f"{function}MergeState{parameters}({name})")
        elif name == "computed_at":
            chosen.append("now64(6)")
        elif kind.startswith("Map("):
            chosen.append(f"sumMap({name})")
        elif kind.startswith(("UInt64", "Decimal")) and name != "long_input":
            chosen.append(f"sum({name})")
        else:
            keys.append(name)
            chosen.append(name)
    return (
        f"INSERT INTO {CELLS_TABLE} SELECT {', '.join(chosen)} FROM {CELLS_TABLE} FINAL "
        f"ARRAY JOIN range({COPIES}) AS copy WHERE toDate(window_start) = {{day:Date}} "
        f"GROUP BY {', '.join(keys)}"
    )


def copies_sql(client: Any, table: str) -> str:
    """Copies 1..9 of every row, with new event ids and prompt hashes."""
    new = {
        "event_id": "concat(event_id, '-', toString(copy))",
        "prompt_hash": "if(prompt_hash = '', '', concat(prompt_hash, '-', toString(copy)))",
    }
    names = [name for name, _ in _columns(client, table)]
    chosen = ", ".join(new.get(name, name) for name in names)
    return (
        f"INSERT INTO {table} ({', '.join(names)}) SELECT {chosen} FROM {table} FINAL "
        f"ARRAY JOIN range(1, {COPIES}) AS copy"
    )


def build(data: Path, database: str) -> None:
    client = connect(f"chdb://{data}", database)
    scale(client)
    client.close()


def scale(client: Any) -> None:
    """Scale the cells and both repeats tables ten times (module doc), then merge them."""

    def timed(label: str, sql: str, parameters: dict[str, Any] | None = None) -> None:
        began = time.perf_counter()
        client.command(sql, parameters=parameters)
        took = time.perf_counter() - began
        print(f"{label:40} {took:7.1f} s  load {os.getloadavg()[0]:.1f}", flush=True)

    for table in (CELLS_TABLE, REPEATS_TABLE, TEAM_REPEATS_TABLE):
        timed(f"optimize {table} (before)", f"OPTIMIZE TABLE {table} FINAL")
    days = client.query(f"SELECT DISTINCT toDate(window_start) FROM {CELLS_TABLE} ORDER BY 1")
    sql = cells_sql(client)
    began = time.perf_counter()
    for (day,) in days.result_rows:
        client.command(sql, parameters={"day": day})
    print(f"{'cells x10':40} {time.perf_counter() - began:7.1f} s", flush=True)
    for table in (REPEATS_TABLE, TEAM_REPEATS_TABLE):
        timed(f"{table} x10", copies_sql(client, table))
    for table in (CELLS_TABLE, REPEATS_TABLE, TEAM_REPEATS_TABLE):
        timed(f"optimize {table}", f"OPTIMIZE TABLE {table} FINAL")
    counts = client.query(
        f"SELECT (SELECT sum(events) FROM {CELLS_TABLE} FINAL), "
        f"(SELECT count() FROM {REPEATS_TABLE} FINAL), "
        f"(SELECT count() FROM {TEAM_REPEATS_TABLE} FINAL)"
    ).result_rows[0]
    print(f"events in the cells {counts[0]:,}, repeats {counts[1]:,}, team repeats {counts[2]:,}")


def _insight_rows(name: str, context: Context) -> list[list[Any]]:
    return run_insight(name, context).rows


def run(data: Path, database: str, runs: int) -> None:
    found, (client, pool), _migrate_s = cases(data, database)
    context = whole_period(data, client)
    timed_cases: dict[str, Callable[[], Any]] = dict(found)
    for name in INSIGHTS:
        timed_cases.setdefault(name, partial(_insight_rows, name, context))
    ms: dict[str, list[float]] = {}
    loads = [os.getloadavg()[0]]
    for _ in range(runs):
        for name, case in timed_cases.items():
            began = time.perf_counter()
            case()
            ms.setdefault(name, []).append((time.perf_counter() - began) * 1000)
        loads.append(os.getloadavg()[0])
    for name, each in ms.items():
        print(
            f"{name:24} median {statistics.median(each):7.0f} ms  p95 "
            f"{percentile(each, 0.95):7.0f} ms  ({min(each):.0f}-{max(each):.0f}, n={len(each)})"
        )
    print(f"load average (1 min) during the runs: {min(loads):.1f}-{max(loads):.1f}")
    pool.close()
    client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tenfold")
    parser.add_argument("action", choices=("build", "time"))
    parser.add_argument("--data", type=Path, required=True, help="a copy of a kept ledger")
    parser.add_argument("--database", default="bench_explain")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    if args.action == "build":
        build(args.data, args.database)
    else:
        run(args.data, args.database, args.runs)


if __name__ == "__main__":
    main()
