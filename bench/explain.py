"""Explain benchmark: latency over a generated 30-day ledger, and the drivers rollups' cost on
the hot path.

    python -m bench.explain [--rows 1000000] [--runs 5] [--batches 20] [--quick]

1. The ledger of ``bench.reports.generate`` (``rows`` over 30 days, rollups rebuilt, the drivers
   rollups among them); ``spendstream.explain.explain`` then runs ``runs`` times per case (the
   last 24 h vs a week before for all spend, one team, one feature; the last 7 days vs the 7
   before). Reported: p50/p95 wall time (ms) and the cells read per period.
2. Hot path: ``LedgerWriter.write`` of ``batches`` batches of 500 events into a fresh ledger,
   with and without the three drivers steps; reported: the median refresh time per batch (ms).
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
from spendstream.explain import Scope, default_periods, explain
from spendstream.explain.cells import read_cells
from spendstream.pricing import default_pricer
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from spendstream.sinks.ledger import REFRESH_STEPS, LedgerEntry, LedgerWriter
from spendstream.worker.schema import migrate

CASES: dict[str, tuple[dict[str, list[str]], timedelta]] = {
    "all spend, 24 h vs a week before": ({}, timedelta(days=1)),
    "team=search, 24 h": ({"team": ["search"]}, timedelta(days=1)),
    "feature=qa, 24 h": ({"feature": ["qa"]}, timedelta(days=1)),
    "all spend, 7 d vs the 7 d before": ({}, timedelta(days=7)),
}


def run_latency(dsn: str, rows: int, runs: int) -> dict[str, Any]:
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
        cells = len(read_cells(reader, Scope(filters), *period))
        read_ms = (time.perf_counter() - read_started) * 1000
        figures[name] = {
            "p50_ms": round(percentile(timings, 0.5), 1),
            "p95_ms": round(percentile(timings, 0.95), 1),
            "cells_per_period": cells,
            "read_one_period_ms": round(read_ms, 1),
            "sentence": answer.sentence,
        }
        print(f"  {name:<36} p50 {figures[name]['p50_ms']:>8} ms  cells {cells}", flush=True)
    client.close()
    return {**generated, "runs": runs, "cases": figures}


def run_refresh(dsn: str, batches: int) -> dict[str, Any]:
    """Median refresh time per 500-event batch with and without the drivers steps."""
    pricer = default_pricer()
    result: dict[str, Any] = {}
    for label, steps in (
        ("without drivers rollups", [s for s in REFRESH_STEPS if "drivers" not in s[1]]),
        ("with drivers rollups", list(REFRESH_STEPS)),
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
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.explain")
    parser.add_argument("--rows", type=int, default=1_000_000, help="generated ledger rows")
    parser.add_argument("--runs", type=int, default=5, help="runs per case")
    parser.add_argument("--batches", type=int, default=20, help="hot-path batches of 500")
    parser.add_argument("--quick", action="store_true", help="20,000 rows, 2 runs, 3 batches")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.runs, args.batches = 20_000, 2, 3
    with tempfile.TemporaryDirectory(prefix="bench-explain-") as work:
        refresh = run_refresh(f"chdb://{work}/refresh", args.batches)
        print(f"  hot path: {refresh}", flush=True)
        latency = run_latency(f"chdb://{work}/clickhouse", args.rows, args.runs)
    results = {"machine": machine_facts(), "stages": {"explain": latency, "refresh": refresh}}
    path = write_results(results, args.out or Path(__file__).parent / "results")
    print(f"[bench] {latency['rows']} rows in {latency['generate_s']} s; results: {path}")
    return results


if __name__ == "__main__":
    main()
