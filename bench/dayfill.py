"""Does a batch's ClickHouse cost grow as the day fills? ``LedgerWriter.write`` (one INSERT, then
the rollup refresh) in this process on an embedded chDB, events in time order over one busy day
(as a stream delivers them: each batch touches a minute or two), measured at checkpoints.

    .venv/bin/python -m bench.dayfill --events 3000000 --checkpoints 100000,1000000,3000000

For every batch, wall seconds and this process's CPU seconds (chDB runs in-process, so CPU
beyond the Python part is ClickHouse's) for the insert and for the refresh; each checkpoint
reports the mean of the ``--window`` batches before it, in µs per event. No decay means the
figures at 1 M and 3 M events stay within 10 % of those at 100 k (issue 29).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, bench_event, machine_facts, write_results
from spendstream.pricing import default_pricer
from spendstream.sinks.client import connect
from spendstream.sinks.ledger import LedgerEntry, LedgerWriter
from spendstream.worker.schema import migrate

DAY = datetime(2026, 11, 3, tzinfo=UTC)


def day_batches(count: int, batch: int, users: int, seed: int = 3) -> Iterator[list[LedgerEntry]]:
    """``count`` priced events spread evenly over ``DAY`` in time order, ``batch`` at a time;
    the bench's dimension mix (5 teams x 4 apps x 3 features x ``users`` users x 4 models)."""
    rng = random.Random(seed)
    pricer = default_pricer()
    step_ms = 86_400_000 / count
    for start in range(0, count, batch):
        entries = []
        for index in range(start, min(start + batch, count)):
            moment = DAY + timedelta(milliseconds=int(index * step_ms))
            event = bench_event(f"day-{index}", index, moment, rng, users)
            entries.append(LedgerEntry(event, pricer.rate(event)))
        yield entries


def measured(action: Any, *args: Any) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    action(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def run(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    client = connect(f"chdb://{data}", "dayfill")
    migrate(client)
    writer = LedgerWriter(client, price_version=1)
    checkpoints = sorted(args.checkpoints)
    results: dict[str, Any] = {}
    recent: list[dict[str, float]] = []
    written = 0
    for batch in day_batches(args.events, args.batch_size, args.users):
        times = [entry.event.event_time for entry in batch]
        insert = measured(writer.insert, batch)
        refresh = measured(writer.refresh_rollups, times)
        sample = {
            "insert_wall": insert[0],
            "insert_cpu": insert[1],
            "refresh_wall": refresh[0],
            "refresh_cpu": refresh[1],
            "events": len(batch),
        }
        written += len(batch)
        recent = [*recent[-(args.window - 1) :], sample]
        if checkpoints and written >= checkpoints[0]:
            results[str(checkpoints.pop(0))] = summary(recent)
            print(f"[dayfill] {written:,} events: {results[str(written)]}", flush=True)
    client.close()
    return results


def summary(samples: list[dict[str, float]]) -> dict[str, float]:
    events = sum(sample["events"] for sample in samples)
    out = {
        f"{key}_us_per_event": round(sum(s[key] for s in samples) / events * 1e6, 2)
        for key in ("insert_wall", "insert_cpu", "refresh_wall", "refresh_cpu")
    }
    out["batches"] = len(samples)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.dayfill")
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--window", type=int, default=10, help="batches per checkpoint figure")
    parser.add_argument(
        "--checkpoints",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[100_000, 1_000_000, 3_000_000],
    )
    parser.add_argument("--data", type=Path, default=None, help="chDB directory (default: tmp)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "dayfill", help="results dir")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dayfill-") as tmp:
        results = run(args, args.data or Path(tmp) / "clickhouse")
    out = {
        "machine": machine_facts(),
        "dayfill": {"events": args.events, "batch_size": args.batch_size, "users": args.users},
        "checkpoints": results,
    }
    print(f"[dayfill] results: {write_results(out, args.out)}")
    return out


if __name__ == "__main__":
    main()
