"""Explain benchmark: latency over a generated 30-day ledger, and the drivers rollups' cost on
the hot path.

    python -m bench.explain [--rows 1000000] [--runs 5] [--batches 20] [--data DIR] [--quick]
                            [--pool N] [--case NAME]... [--span-days 30]

1. The ledger of ``bench.reports.generate`` (``rows`` over ``--span-days`` days, rollups rebuilt,
   the drivers rollups among them; ``--quick``: 15 days, the fewest that hold every case's
   period and baseline, as the rebuild costs ~0.45 CPU-s a day whatever the rows);
   ``spendstream.explain.explain`` then runs ``runs`` times per case (the
   last 24 h vs a week before for all spend, one team, one feature; the last 7 days vs the 7
   before). Reported: p50/p95 wall time (ms), the read's and the decomposition's share (each
   run's cells read again and decomposed apart), the cells per period.
   ``--data DIR`` keeps the generated ledger in DIR and reuses it on the next run;
   ``--pool N`` reads through a pool of ``N`` clients, as the API does (the two periods' cells
   read at once), instead of one client.
2. Hot path: ``LedgerWriter.write`` of ``batches`` batches of 500 events into a fresh ledger,
   without the drivers steps, with them but not the lean drivers (migration 70), and with every
   step; reported: the median refresh time per batch (ms).
Results go to ``bench/results``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from bench.common import machine_facts, make_events, percentile, write_results
from bench.reports import SPAN_DAYS, generate
from spendstream.explain import MAX_GROUPS, Scope, default_periods, explain, explain_cells
from spendstream.explain.decompose import decompose
from spendstream.explain.lumping import read_both
from spendstream.pricing import default_pricer
from spendstream.sinks.access import ClientReader, Reader
from spendstream.sinks.client import connect
from spendstream.sinks.ledger import REFRESH_STEPS, LedgerEntry, LedgerWriter
from spendstream.sinks.pool import PooledReader
from spendstream.worker.schema import migrate

CASES: dict[str, tuple[dict[str, list[str]], timedelta]] = {
    "all spend, 24 h vs a week before": ({}, timedelta(days=1)),
    "team=search, 24 h": ({"team": ["search"]}, timedelta(days=1)),
    "feature=qa, 24 h": ({"feature": ["qa"]}, timedelta(days=1)),
    "all spend, 7 d vs the 7 d before": ({}, timedelta(days=7)),
}


def timed(action: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = action(*args)
    return result, (time.perf_counter() - started) * 1000


def ledger_at(
    dsn: str, rows: int, span_days: int = SPAN_DAYS
) -> tuple[Client, datetime, dict[str, Any]]:
    """The generated ledger of ``dsn``: made (and its end time kept beside it) on first use,
    reused after, so that before/after runs and profiles read the same ledger."""
    client = connect(dsn, "bench_explain")
    migrate(client)
    stamp = Path(dsn.removeprefix("chdb://")) / "bench-end.txt"
    if stamp.exists():
        end = datetime.fromisoformat(stamp.read_text().strip())
        return client, end, {"rows": rows, "reused": str(stamp.parent)}
    end = datetime.now(UTC).replace(microsecond=0)
    generated = generate(client, rows, end, span_days)
    stamp.write_text(end.isoformat())
    return client, end, generated


def run_case(reader: Reader, scope: Scope, period: Any, baseline: Any, runs: int) -> dict:
    """``runs`` rounds of explain, each followed by its read and its decomposition and report
    timed apart (where the time goes)."""
    after, reads, rest = [], [], []
    for _ in range(runs):
        answer, ms = timed(explain, reader, scope, period, baseline)
        after.append(ms)
        cells, read_ms = timed(read_both, reader, scope, period, baseline, MAX_GROUPS)
        _, rest_ms = timed(explain_cells, scope, period, baseline, *cells)
        reads.append(read_ms)
        rest.append(rest_ms)
    _, decompose_ms = timed(decompose, *cells)
    return {
        "p50_ms": round(percentile(after, 0.5), 1),
        "p95_ms": round(percentile(after, 0.95), 1),
        "runs_ms": [round(t, 1) for t in after],
        "read_p50_ms": round(percentile(reads, 0.5), 1),
        "decomposition_and_report_p50_ms": round(percentile(rest, 0.5), 1),
        "decompose_ms": round(decompose_ms, 1),
        "cells_per_period": len(cells[1]),
        "cells_baseline": len(cells[0]),
        "sentence": answer.sentence,
    }


def run_latency(
    dsn: str,
    rows: int,
    runs: int,
    pool: int = 1,
    cases: list[str] | None = None,
    span_days: int = SPAN_DAYS,
) -> dict[str, Any]:
    client, end, generated = ledger_at(dsn, rows, span_days)
    reader: Reader = ClientReader(client)
    if pool > 1:
        reader = PooledReader(lambda: connect(dsn, "bench_explain"), size=pool)
    load_before = list(os.getloadavg())
    figures: dict[str, Any] = {}
    for name, (filters, span) in CASES.items():
        if cases and name not in cases:
            continue
        period, baseline = default_periods(end)
        if span != timedelta(days=1):
            period, baseline = (end - span, end), (end - 2 * span, end - span)
        figures[name] = run_case(reader, Scope(filters), period, baseline, runs)
        print(f"  {name:<36} {figures[name]}", flush=True)
    load = {"before": load_before, "after": list(os.getloadavg())}
    if isinstance(reader, PooledReader):
        reader.close()
    client.close()
    return {**generated, "runs": runs, "pool": pool, "load_average": load, "cases": figures}


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
        "--data", type=Path, default=None, help="keep the generated ledger here and reuse it"
    )
    parser.add_argument("--pool", type=int, default=1, help="clients read through (API: 4)")
    parser.add_argument("--case", action="append", choices=list(CASES), help="default: all")
    parser.add_argument("--skip-refresh", action="store_true", help="latency only")
    parser.add_argument("--span-days", type=int, default=SPAN_DAYS, help="days the ledger spans")
    parser.add_argument(
        "--quick", action="store_true", help="20,000 rows over 15 days, 2 runs, 3 batches"
    )
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    args = parser.parse_args(argv)
    if args.quick:
        # 15 days: the 7 days before the last 7 (the widest case's baseline), and a day more
        args.rows, args.runs, args.batches, args.span_days = 20_000, 2, 3, 15
    with tempfile.TemporaryDirectory(prefix="bench-explain-") as work:
        refresh: dict[str, Any] = {}
        if not args.skip_refresh:
            refresh = run_refresh(f"chdb://{work}/refresh", args.batches)
            print(f"  hot path: {refresh}", flush=True)
        data = args.data or Path(work) / "clickhouse"
        latency = run_latency(
            f"chdb://{data}", args.rows, args.runs, args.pool, args.case, args.span_days
        )
    results = {"machine": machine_facts(), "stages": {"explain": latency, "refresh": refresh}}
    path = write_results(results, args.out or Path(__file__).parent / "results")
    made = latency.get("generate_s", "reused")
    print(f"[bench] {latency['rows']} rows in {made} s; results: {path}")
    return results


if __name__ == "__main__":
    main()
