"""Explain benchmark: latency over a generated 30-day ledger, and the drivers rollups' cost on
the hot path.

    python -m bench.explain [--rows 1000000] [--runs 5] [--batches 20] [--quick]

1. The ledger of ``bench.reports.generate`` (``rows`` over 30 days, rollups rebuilt, the drivers
   rollups among them); ``spendstream.explain.explain`` then runs ``runs`` times per case (the
   last 24 h vs a week before for all spend, one team, one feature; the last 7 days vs the 7
   before). Reported: p50/p95 wall time (ms) and the cells read per period.
   ``--before-runs`` more runs of the previous read (every cell read, users merged in Python by
   ``cells.lump_users``) on the 24 h cases give the before/after at the same size.
2. Hot path: ``LedgerWriter.write`` of ``batches`` batches of 500 events into a fresh ledger,
   without the drivers steps, with them but not the lean drivers (migration 70), and with every
   step; reported: the median refresh time per batch (ms).
Results go to ``bench/results``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import machine_facts, make_events, percentile, write_results
from bench.reports import generate
from spendstream.explain import MAX_GROUPS, Scope, default_periods, explain
from spendstream.explain.cells import lump_users, read_cells
from spendstream.explain.decompose import decompose
from spendstream.explain.lumping import read_both
from spendstream.pricing import default_pricer
from spendstream.sinks.access import ClientReader, Reader
from spendstream.sinks.client import connect
from spendstream.sinks.ledger import REFRESH_STEPS, LedgerEntry, LedgerWriter
from spendstream.worker.schema import migrate

CASES: dict[str, tuple[dict[str, list[str]], timedelta]] = {
    "all spend, 24 h vs a week before": ({}, timedelta(days=1)),
    "team=search, 24 h": ({"team": ["search"]}, timedelta(days=1)),
    "feature=qa, 24 h": ({"feature": ["qa"]}, timedelta(days=1)),
    "all spend, 7 d vs the 7 d before": ({}, timedelta(days=7)),
}


def previous_read(reader: Reader, scope: Scope, period: Any, baseline: Any) -> int:
    """The read and decomposition as before migration 70 (every cell, merged in Python);
    returns the cells decomposed."""
    before, after = read_cells(reader, scope, *baseline), read_cells(reader, scope, *period)
    if len(before) + len(after) > 4_000:
        before, after = lump_users(before, after, MAX_GROUPS)
    return len(decompose(before, after))


def run_latency(dsn: str, rows: int, runs: int, before_runs: int) -> dict[str, Any]:
    client = connect(dsn, f"bench_explain_{int(time.time())}")
    migrate(client)
    end = datetime.now(UTC).replace(microsecond=0)
    generated = generate(client, rows, end)
    reader = ClientReader(client)
    figures: dict[str, Any] = {}
    for name, (filters, span) in CASES.items():
        period, baseline = default_periods(end)
        if span != timedelta(days=1):
            period, baseline = (end - span, end), (end - 2 * span, end - span)
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            answer = explain(reader, Scope(filters), period, baseline)
            timings.append((time.perf_counter() - started) * 1000)
        read_started = time.perf_counter()
        cells = read_both(reader, Scope(filters), period, baseline, MAX_GROUPS)
        read_ms = (time.perf_counter() - read_started) * 1000
        figures[name] = {
            "p50_ms": round(percentile(timings, 0.5), 1),
            "p95_ms": round(percentile(timings, 0.95), 1),
            "runs_ms": [round(t, 1) for t in timings],
            "cells_per_period": len(cells[1]),
            "read_both_periods_ms": round(read_ms, 1),
            "sentence": answer.sentence,
        }
        if before_runs and span == timedelta(days=1):
            previous = []
            for _ in range(before_runs):
                started = time.perf_counter()
                decomposed = previous_read(reader, Scope(filters), period, baseline)
                previous.append((time.perf_counter() - started) * 1000)
            figures[name]["before"] = {
                "p50_ms": round(percentile(previous, 0.5), 1),
                "p95_ms": round(percentile(previous, 0.95), 1),
                "runs_ms": [round(t, 1) for t in previous],
                "cells_decomposed": decomposed,
            }
        print(f"  {name:<36} p50 {figures[name]['p50_ms']:>8} ms", flush=True)
    client.close()
    return {**generated, "runs": runs, "cases": figures}


def run_refresh(dsn: str, batches: int) -> dict[str, Any]:
    """Median refresh time per 500-event batch with and without the drivers steps."""
    pricer = default_pricer()
    result: dict[str, Any] = {}
    for label, steps in (
        ("without drivers rollups", [s for s in REFRESH_STEPS if "drivers" not in s[1]]),
        ("with drivers rollups", [s for s in REFRESH_STEPS if "drivers_lean" not in s[1]]),
        ("with lean drivers rollups too", list(REFRESH_STEPS)),
    ):
        client = connect(f"{dsn}-{label.split()[0]}", "bench_refresh")
        migrate(client)
        writer = LedgerWriter(client, 1, steps)
        timings = []
        for index in range(batches):
            events = make_events(500, seed=index, prefix=f"b{index}", spread_minutes=3)
            entries = [LedgerEntry(event, pricer.rate(event)) for event in events]
            writer.insert(entries)
            started = time.perf_counter()
            writer.refresh_rollups([entry.event.event_time for entry in entries])
            timings.append((time.perf_counter() - started) * 1000)
        client.close()
        result[label] = round(statistics.median(timings), 1)
    result["added_ms_per_batch"] = round(
        result["with drivers rollups"] - result["without drivers rollups"], 1
    )
    result["lean_added_ms_per_batch"] = round(
        result["with lean drivers rollups too"] - result["with drivers rollups"], 1
    )
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.explain")
    parser.add_argument("--rows", type=int, default=1_000_000, help="generated ledger rows")
    parser.add_argument("--runs", type=int, default=5, help="runs per case")
    parser.add_argument("--batches", type=int, default=20, help="hot-path batches of 500")
    parser.add_argument(
        "--before-runs", type=int, default=2, help="runs of the previous read (24 h cases)"
    )
    parser.add_argument("--skip-refresh", action="store_true", help="latency only")
    parser.add_argument("--quick", action="store_true", help="20,000 rows, 2 runs, 3 batches")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.runs, args.batches, args.before_runs = 20_000, 2, 3, 1
    with tempfile.TemporaryDirectory(prefix="bench-explain-") as work:
        refresh: dict[str, Any] = {}
        if not args.skip_refresh:
            refresh = run_refresh(f"chdb://{work}/refresh", args.batches)
            print(f"  hot path: {refresh}", flush=True)
        latency = run_latency(f"chdb://{work}/clickhouse", args.rows, args.runs, args.before_runs)
    results = {"machine": machine_facts(), "stages": {"explain": latency, "refresh": refresh}}
    path = write_results(results, args.out or Path(__file__).parent / "results")
    print(f"[bench] {latency['rows']} rows in {latency['generate_s']} s; results: {path}")
    return results


if __name__ == "__main__":
    main()
