"""What the insight cells (migration 75) add to a batch's rollup refresh.

    .venv/bin/python -m bench.insight_cells [--per-day 333333] [--batches 60]

Batches of 500 events in time order at ``--per-day`` events a day (333,333: 10 M events over
30 days, ~14,000 an hour), as a stream delivers them (``bench.dayfill``); per batch, the refresh
of every other rollup (``LedgerWriter.refresh_rollups`` without the cells step) and the cells
step alone (``REFRESH_CELLS``: the touched hours recomputed from ``ledger FINAL``), in ms.
Reported: the median of each over the batches after the first hour is half full, and the load
average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, machine_facts, write_results
from bench.dayfill import day_batches
from spendstream.sinks.client import connect
from spendstream.sinks.insight_cells import REFRESH_CELLS
from spendstream.sinks.ledger import REFRESH_STEPS, LedgerWriter, window_starts
from spendstream.worker.schema import migrate


def run(data: Path, per_day: int, batches: int) -> dict[str, Any]:
    client = connect(f"chdb://{data}", "bench_cells")
    migrate(client)
    writer = LedgerWriter(client, 1, [step for step in REFRESH_STEPS if step[1] != REFRESH_CELLS])
    others: list[float] = []
    cells: list[float] = []
    skip = batches // 2  # the first half fills the hour the later batches recompute
    for index, batch in enumerate(day_batches(per_day, 500, 50)):
        if index >= batches:
            break
        writer.insert(batch)
        times = [entry.event.event_time for entry in batch]
        started = time.perf_counter()
        writer.refresh_rollups(times)
        middle = time.perf_counter()
        hours = window_starts(times, "hour")
        client.command(
            REFRESH_CELLS,
            parameters={"starts": hours, "lo": hours[0], "hi": hours[-1] + timedelta(hours=1)},
        )
        if index >= skip:
            others.append((middle - started) * 1000)
            cells.append((time.perf_counter() - middle) * 1000)
    client.close()
    return {
        "per_day": per_day,
        "batches_measured": len(cells),
        "events_per_batch": 500,
        "other_rollups_ms_median": round(statistics.median(others), 1),
        "cells_step_ms_median": round(statistics.median(cells), 1),
        "load_average": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.insight_cells")
    parser.add_argument("--per-day", type=int, default=333_333, help="events a day")
    parser.add_argument("--batches", type=int, default=60, help="500-event batches")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "insight_cells")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-cells-") as tmp:
        result = run(Path(tmp) / "clickhouse", args.per_day, args.batches)
    out = {"machine": machine_facts(), "refresh": result}
    print(f"[insight_cells] {result}; results: {write_results(out, args.out)}")
    return out


if __name__ == "__main__":
    main()
