"""Does a batch's ClickHouse cost grow as the day fills? ``LedgerWriter.write`` (one INSERT, then
the rollup refresh) in this process on an embedded chDB, events in time order over one busy day
(as a stream delivers them: each batch touches a minute or two), measured at checkpoints.

    .venv/bin/python -m bench.dayfill --events 3000000 --checkpoints 100000,1000000,3000000

For every batch, wall seconds and this process's CPU seconds (chDB runs in-process, so CPU
beyond the Python part is ClickHouse's) for the insert and for the refresh; each checkpoint
reports the mean of the ``--window`` batches before it, in µs per event, and the rate they
make (events / (insert + refresh wall)). No decay means the figures at 1 M and 3 M events stay
within 10 % of those at 100 k (issue 29).

``--refresh deferred`` (the worker's way, ``sinks.open_windows``) marks the open hour and day
and flushes them on the writer's timer, the clock being the stream's time (the last batch's
newest event), as a live stream would see it; ``per-batch`` recomputes them for every batch (as
before issue 29). At the end the writer settles (a drain) and every rollup's total is checked
against the ledger's.
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
from spendstream.sinks.ledger import REFRESH_STEPS, Deferral, LedgerEntry, LedgerWriter
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


def stream_entries(prefix: str, times: list[datetime], users: int, seed: int) -> list[LedgerEntry]:
    """Priced events of the bench's mix at ``times``, ids ``<prefix>-<n>``."""
    rng = random.Random(seed)
    pricer = default_pricer()
    entries = []
    for index, moment in enumerate(times):
        event = bench_event(f"{prefix}-{seed}-{index}", index, moment, rng, users)
        entries.append(LedgerEntry(event, pricer.rate(event)))
    return entries


def measured(action: Any, *args: Any) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    action(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def run(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    client = connect(f"chdb://{data}", "dayfill")
    migrate(client)
    stream_time = [DAY]
    deferral = Deferral(clock=lambda: stream_time[0]) if args.refresh == "deferred" else None
    writer = LedgerWriter(client, price_version=1, deferral=deferral)
    checkpoints = sorted(args.checkpoints)
    results: dict[str, Any] = {}
    recent: list[dict[str, float]] = []
    written = 0
    for batch in day_batches(args.events, args.batch_size, args.users):
        times = [entry.event.event_time for entry in batch]
        stream_time[0] = max(times)
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
    settle_wall, settle_cpu = measured(writer.settle)
    results["settle"] = {"wall_s": round(settle_wall, 3), "cpu_s": round(settle_cpu, 3)}
    results["rollups_equal_ledger"] = rollups_equal_ledger(client)
    print(
        f"[dayfill] settled: {results['settle']}; rollups = ledger: "
        f"{results['rollups_equal_ledger']}",
        flush=True,
    )
    client.close()
    return results


def rollups_equal_ledger(client: Any) -> bool:
    """Whether every rollup the writer refreshes holds the ledger's events and cost."""
    ledger = client.query("SELECT count(), sum(cost_total) FROM ledger FINAL").result_rows[0]
    tables = sorted({sql.split()[2] for _unit, sql in REFRESH_STEPS} | {"rollup_minute"})
    # The runs and the prompt sightings count no events (a row per run, per sighting).
    with_events = {
        str(row[0])
        for row in client.query(
            "SELECT table FROM system.columns WHERE database = currentDatabase() "
            "AND name = 'events'"
        ).result_rows
    }
    tables = [table for table in tables if table in with_events]
    return all(
        client.query(f"SELECT sum(events), sum(cost_total) FROM {table} FINAL").result_rows[0]
        == ledger
        for table in tables
    )


def summary(samples: list[dict[str, float]]) -> dict[str, float]:
    events = sum(sample["events"] for sample in samples)
    out = {
        f"{key}_us_per_event": round(sum(s[key] for s in samples) / events * 1e6, 2)
        for key in ("insert_wall", "insert_cpu", "refresh_wall", "refresh_cpu")
    }
    wall = sum(s["insert_wall"] + s["refresh_wall"] for s in samples)
    out["events_per_s"] = round(events / wall) if wall else 0.0
    out["batches"] = len(samples)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.dayfill")
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--window", type=int, default=10, help="batches per checkpoint figure")
    parser.add_argument(
        "--refresh", choices=("deferred", "deferred-minutes", "per-batch"), default="deferred"
    )
    parser.add_argument("--pace", type=float, default=0.0, help="events/s: a steady stream")
    parser.add_argument("--window-s", type=float, default=20.0, help="paced seconds per level")
    parser.add_argument(
        "--paced-batch", type=int, default=2_000, help="the worker's batch, Kafka messages"
    )
    parser.add_argument("--pack", type=int, default=1, help="paced: events per Kafka message")
    parser.add_argument(
        "--within", type=float, default=0.25, help="paced: the worker's batch_within_s"
    )
    parser.add_argument(
        "--ledger-settings", default="", help="paced: k=v,... set on the ledger after migrating"
    )
    parser.add_argument(
        "--statements",
        action="store_true",
        help="paced: split ClickHouse's CPU per statement kind and merge (query_log, part_log)",
    )
    parser.add_argument(
        "--fill",
        choices=("recent", "spread"),
        default="recent",
        help="paced: the day's events came at the pace just before the window (the open hour "
        "holds them), or spread over its first 12 hours",
    )
    parser.add_argument(
        "--settle",
        choices=("backlog", "drained", "steady"),
        default="steady",
        help="paced: settle after a batch with no backlog (before session 9), when drained "
        "(session 10), or when drained and not steady (stream.drain.steady)",
    )
    parser.add_argument(
        "--checkpoints",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[100_000, 1_000_000, 3_000_000],
    )
    parser.add_argument("--data", type=Path, default=None, help="chDB directory (default: tmp)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "dayfill", help="results dir")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dayfill-") as tmp:
        data = args.data or Path(tmp) / "clickhouse"
        if args.pace:
            from bench.dayfill_paced import run_paced  # it imports this module

            results = run_paced(args, data)
        else:
            results = run(args, data)
    out = {
        "machine": machine_facts(),
        "dayfill": {
            "events": args.events,
            "batch_size": args.batch_size,
            "users": args.users,
            "refresh": args.refresh,
            "pace": args.pace,
            "window_s": args.window_s,
            "paced_batch": args.paced_batch,
            "pack": args.pack,
            "within": args.within,
            "ledger_settings": args.ledger_settings,
            "settle": args.settle,
            "fill": args.fill,
        },
        "checkpoints": results,
    }
    print(f"[dayfill] results: {write_results(out, args.out)}")
    return out


if __name__ == "__main__":
    main()
