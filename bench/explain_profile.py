"""Where one Explain call's time goes: each query of its read timed alone, each query's sources
(the ledger edges, the hour rollup, the day rollup) apart, then the Python part.

    python -m bench.explain_profile --data DIR [--rows N] [--case NAME]... [--repeat 5]
                                    [--span-days 30]

On the ledger of ``bench.explain --data DIR`` (generated there first if missing, over
``--span-days``): one read
(``explain.lumping.read_both``) through a reader that records every query; then each query
``repeat`` times alone, and each ``UNION ALL`` branch of its innermost ``FROM ( … )`` alone with
every column it names read (``NOT ignore(*)``: a bare ``count()`` would read nothing); then the
decomposition and report of the cells (``explain_cells``). Wall and process CPU time per run
(chDB runs in this process: its threads' CPU counts); the fastest and the median of the runs
are reported. Nothing is asserted. Results go to ``bench/results``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from bench.common import machine_facts, write_results
from bench.explain import CASES, ledger_at
from bench.reports import SPAN_DAYS
from spendstream.explain import DEFAULT_SPAN, MAX_GROUPS, Scope, default_periods, explain_cells
from spendstream.explain.lumping import read_both
from spendstream.sinks.access import ClientReader, QueryResult

Query = tuple[str, dict[str, Any]]


class RecordingReader(ClientReader):
    """A :class:`ClientReader` keeping every query it ran, with its parameters."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.queries: list[Query] = []

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult:
        self.queries.append((sql, dict(parameters or {})))
        return super().query(sql, parameters)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timings(action: Callable[[], Any], repeat: int) -> dict[str, float]:
    """Fastest and median wall and process CPU time (ms) of ``repeat`` runs of ``action``."""
    walls, cpus = [], []
    for _ in range(repeat):
        started, cpu = time.perf_counter(), _cpu_s()
        action()
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append((_cpu_s() - cpu) * 1000)
    return {
        "wall_min_ms": round(min(walls), 1),
        "wall_median_ms": round(statistics.median(walls), 1),
        "cpu_min_ms": round(min(cpus), 1),
        "cpu_median_ms": round(statistics.median(cpus), 1),
    }


def branches(sql: str) -> list[str]:
    """The ``UNION ALL`` branches of the sub-query ``FROM ( … ) GROUP BY`` ([] if none)."""
    if " UNION ALL " not in sql:
        return []
    start = sql.index("FROM (") + len("FROM (")
    inner = sql[start : sql.rindex(") GROUP BY")]
    return inner.split(" UNION ALL ")


def _runner(client: Client, sql: str, params: dict[str, Any]) -> Callable[[], Any]:
    return lambda: client.query(sql, parameters=params)


def _source(branch: str) -> str:
    """The table a branch reads (``ledger``, ``rollup_hour``, …)."""
    return branch.split(" FROM ", 1)[1].split()[0]


def profile_case(client: Client, scope: Scope, period: Any, baseline: Any, repeat: int) -> dict:
    reader = RecordingReader(client)
    cells = read_both(reader, scope, period, baseline, MAX_GROUPS)
    queries = []
    for sql, params in reader.queries:
        rows = len(client.query(sql, parameters=params).result_rows)
        parts = [
            {
                "source": _source(branch),
                **timings(
                    _runner(client, f"SELECT count() FROM ({branch}) WHERE NOT ignore(*)", params),
                    repeat,
                ),
            }
            for branch in branches(sql)
        ]
        whole = timings(_runner(client, sql, params), repeat)
        queries.append({"rows": rows, **whole, "branches": parts, "sql": sql[:160]})
    python = timings(lambda: explain_cells(scope, period, baseline, *cells), repeat)
    return {
        "queries": queries,
        "read_both": timings(
            lambda: read_both(ClientReader(client), scope, period, baseline, MAX_GROUPS), repeat
        ),
        "decomposition_and_report": python,
        "cells": [len(side) for side in cells],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.explain_profile")
    parser.add_argument("--data", type=Path, required=True, help="bench.explain's ledger dir")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows if generated here")
    parser.add_argument("--case", action="append", choices=list(CASES), help="default: all")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each query")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    parser.add_argument(
        "--span-days", type=int, default=SPAN_DAYS, help="days the ledger spans if generated here"
    )
    args = parser.parse_args(argv)
    client, end, generated = ledger_at(f"chdb://{args.data}", args.rows, args.span_days)
    load = [list(os.getloadavg())]
    cases: dict[str, Any] = {}
    for name in args.case or list(CASES):
        filters, span = CASES[name]
        period, baseline = default_periods(end)
        if span != DEFAULT_SPAN:
            period, baseline = (end - span, end), (end - 2 * span, end - span)
        cases[name] = profile_case(client, Scope(filters), period, baseline, args.repeat)
        print(f"  {name}: {_summary(cases[name])}", flush=True)
    load.append(list(os.getloadavg()))
    client.close()
    results = {
        "machine": machine_facts(),
        "stages": {"explain_profile": {**generated, "load_average": load, "cases": cases}},
    }
    path = write_results(results, args.out or Path(__file__).parent / "results")
    print(f"[bench] results: {path}")
    return results


def _summary(case: dict[str, Any]) -> str:
    parts = []
    for query in case["queries"]:
        sources = ", ".join(
            f"{branch['source']} {branch['cpu_min_ms']:.0f}" for branch in query["branches"]
        )
        parts.append(f"query {query['cpu_min_ms']:.0f} ms cpu ({query['rows']} rows: {sources})")
    python = case["decomposition_and_report"]["cpu_min_ms"]
    return "; ".join([*parts, f"python {python:.0f} ms", f"cells {case['cells']}"])


if __name__ == "__main__":
    main()
