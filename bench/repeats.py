"""Repeated prompts and untagged spend: ``caching``, ``embeddings``, ``untagged`` and the
recommendations over a kept 10 M-event ledger, before (every figure from ``ledger FINAL``) and
after (the prompt sightings and repeats of migrations 76-77, the cells and the rollups), in one
run; the recommendations also through a pool of four clients (``pooled``: the API's reader, on
which they read their insights at once). ``--no-ledger`` skips the reads of ``ledger FINAL``.

    .venv/bin/python -m bench.repeats --data DIR [--runs 3]

``DIR`` is a chDB directory holding a generated ledger (``bench.explain --data DIR`` makes and
keeps one; work on a copy: the pending migrations are applied to it, and their time reported).
Every case runs ``runs`` times in turn over the whole period (the ledger's 30 days and a day on
each side); ``--refresh-batches N`` then writes N batches of 500 events of known prompts and
times the sightings', the repeats' and the insight cells' refresh steps alone (it adds rows
to ``DIR``). Reported: p50 and p95 of the wall times in ms, whether each answer is equal before
and after, and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from bench.common import RESULTS_DIR, machine_facts, percentile, write_results
from bench.reports import SPAN_DAYS
from spendstream.advice.recommend import build
from spendstream.config import InsightsSettings
from spendstream.events import UsageEvent
from spendstream.insights import Context, Window, run_insight
from spendstream.pricing import default_pricer
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from spendstream.sinks.insight_cells import REFRESH_CELLS
from spendstream.sinks.ledger import LedgerEntry, LedgerWriter, window_starts
from spendstream.sinks.pool import PooledReader
from spendstream.sinks.prompt_sightings import REFRESH_REPEATS, REFRESH_SIGHTINGS, SIGHTINGS_TABLE
from spendstream.sinks.team_repeats import REFRESH_TEAM_REPEATS
from spendstream.worker.schema import migrate

NAMES = ("caching", "embeddings", "untagged")


def refresh_ms(client: Client, end: datetime, batches: int) -> list[tuple[float, ...]]:
    """Per batch of 500 new events, each a prompt the ledger has seen (about 40 times in the
    generated ledger), the sightings step (``REFRESH_SIGHTINGS``) and the repeats step after it
    (``REFRESH_REPEATS``), the insight cells' step (``REFRESH_CELLS``) and the team repeats' step
    (``REFRESH_TEAM_REPEATS``, after the repeats') alone, in ms."""
    pricer = default_pricer()
    writer = LedgerWriter(client, 1)
    timings = []
    for index in range(batches):
        seen = client.query(
            f"SELECT provider, model, prompt_hash FROM {SIGHTINGS_TABLE} "
            "WHERE prompt_hash != '' AND operation != 'embeddings' "
            "ORDER BY cityHash64(prompt_hash, {i:UInt64}) LIMIT 500",
            parameters={"i": index},
        ).result_rows
        moment = end + timedelta(minutes=index)
        events = [
            UsageEvent(
                provider=provider,
                model=model,
                prompt_hash=prompt,
                input_tokens=100,
                output_tokens=10,
                event_time=moment + timedelta(milliseconds=n),
            )
            for n, (provider, model, prompt) in enumerate(seen)
        ]
        writer.insert([LedgerEntry(event, pricer.rate(event)) for event in events])
        minutes = window_starts([event.event_time for event in events], "minute")
        parameters = {"starts": minutes, "lo": minutes[0], "hi": minutes[-1] + timedelta(minutes=1)}
        began = time.perf_counter()
        client.command(REFRESH_SIGHTINGS, parameters=parameters)
        middle = time.perf_counter()
        client.command(REFRESH_REPEATS, parameters=parameters)
        repeated = time.perf_counter()
        client.command(REFRESH_TEAM_REPEATS, parameters=parameters)
        repeats = time.perf_counter()
        hours = window_starts([event.event_time for event in events], "hour")
        client.command(
            REFRESH_CELLS,
            parameters={"starts": hours, "lo": hours[0], "hi": hours[-1] + timedelta(hours=1)},
        )
        done = time.perf_counter()
        timings.append(
            tuple(
                (b - a) * 1000
                for a, b in (
                    (began, middle),
                    (middle, repeated),
                    (repeats, done),
                    (repeated, repeats),
                )
            )
        )
        writer.refresh_rollups([event.event_time for event in events])  # the rest, untimed
    return timings


def run(data: Path, database: str, runs: int, batches: int, ledger: bool) -> dict[str, Any]:
    client = connect(f"chdb://{data}", database)
    started = time.perf_counter()
    applied = migrate(client)
    migrate_s = round(time.perf_counter() - started, 1)
    end = datetime.fromisoformat((data / "bench-end.txt").read_text().strip())
    window = Window(end - timedelta(days=SPAN_DAYS + 1), end + timedelta(days=1))
    settings = InsightsSettings(batch_features=["summarise"])
    after = Context(ClientReader(client), default_pricer(), settings, window)
    before = replace(after, from_ledger=True)
    # The API's reader: a pool of clients, so the recommendations read their insights at once.
    pool = PooledReader(lambda: connect(f"chdb://{data}", database), size=4)
    cases = (("after", after), ("pooled", replace(after, reader=pool)), ("before", before))
    timings: dict[str, list[float]] = {}
    answers: dict[str, Any] = {}
    load_start = os.getloadavg()
    for _ in range(runs):
        for name in (*NAMES, "recommendations"):
            for label, context in cases:
                if (label == "pooled" and name != "recommendations") or (
                    label == "before" and not ledger
                ):
                    continue
                case = f"{name}@{label}"
                began = time.perf_counter()
                if name == "recommendations":
                    found: Any = build(context, SPAN_DAYS + 2)
                else:
                    found = run_insight(name, context).rows
                timings.setdefault(case, []).append((time.perf_counter() - began) * 1000)
                answers.setdefault(name, {})[label] = found
                print(f"  {case:<28} {timings[case][-1]:>10.1f} ms", flush=True)
    refresh = refresh_ms(client, end, batches) if batches else []
    pool.close()
    client.close()
    return {
        **{
            f"refresh_{step}_ms": {
                "batches": len(refresh),
                "median": round(statistics.median(ms), 1) if ms else None,
                "runs": [round(value, 1) for value in ms],
            }
            for step, ms in (
                (name, [each[index] for each in refresh])
                for index, name in enumerate(("sightings", "repeats", "cells", "team_repeats"))
            )
        },
        "applied_migrations": applied,
        "migrate_s": migrate_s,
        "runs": runs,
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "equal": {
            name: all(answer == found["after"] for answer in found.values())
            for name, found in answers.items()
        },
        "result_rows": {name: len(found["after"]) for name, found in answers.items()},
        "query_ms": {
            case: {
                "p50": round(percentile(ms, 0.5), 1),
                "p95": round(percentile(ms, 0.95), 1),
                "runs": [round(value, 1) for value in ms],
            }
            for case, ms in timings.items()
        },
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.repeats")
    parser.add_argument("--data", type=Path, required=True, help="a kept ledger (a copy)")
    parser.add_argument("--database", default="bench_explain", help="its database")
    parser.add_argument("--runs", type=int, default=3, help="runs per case")
    parser.add_argument(
        "--refresh-batches", type=int, default=0, help="then time the sightings step (adds rows)"
    )
    parser.add_argument(
        "--no-ledger", action="store_true", help="skip the reads of ledger FINAL (minutes)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "repeats")
    args = parser.parse_args(argv)
    result = run(args.data, args.database, args.runs, args.refresh_batches, not args.no_ledger)
    out = {"machine": machine_facts(), "repeats": result}
    for case, figure in result["query_ms"].items():
        print(f"  {case:<28} p50 {figure['p50']:>10} ms   p95 {figure['p95']:>10} ms")
    print(f"[repeats] equal {result['equal']}; load {result['load_average']}")
    print(f"[repeats] results: {write_results(out, args.out)}")
    return out


if __name__ == "__main__":
    main()
