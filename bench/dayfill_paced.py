"""``bench.dayfill --pace``: a steady stream on a day already holding 100 k, 1 M, 3 M events.

The day is filled first, inserted in bulk, every rollup rebuilt from the ledger and nothing left
marked: with ``--fill recent`` (default) the filling events are the stream itself at the pace just
before the window (the open hour and minute hold them: a busy hour), with ``--fill spread`` they
lie over the day's first 12 hours (each level's share covering all of them). Then a window of
``--window-s`` seconds of a stream at ``--pace`` events/s is fed to ``LedgerWriter`` in batches of
``--paced-batch``, as the worker would get them: batch ``k`` is handed over when its last event
has arrived (real time: ``t0 + (k + 1) × batch / pace``), or at once when the writer is late.
After a batch the writer *settles* (flushes everything deferred) when the agent would:
``--settle drained`` as ``stream.drain.drained`` says, ``--settle backlog`` whenever nothing waits
behind the batch (the agent before issue 29 part 2). The stream's clock (the writer's
``Deferral`` clock) is the newest event handed over, from 12:00:30 on the day.

Reported per level, over the window: this process's CPU per event in the insert, in the refresh
(``refresh_rollups`` and ``settle``), per refresh statement, and in all (``process_time`` over
the window, so chDB's background merges count; less the column build, timed apart on each batch
as ``columns_build_cpu_us``), and the rate the writer could sustain (events / (insert + refresh
wall)). chDB runs in this process, so its CPU is ClickHouse's plus the driver's; the events are
generated before the window starts.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.dayfill import DAY, rollups_equal_ledger, stream_entries
from spendstream.sinks import open_windows
from spendstream.sinks.client import connect
from spendstream.sinks.entry import ledger_columns
from spendstream.sinks.ledger import Deferral, LedgerEntry, LedgerWriter, rebuild_rollups
from spendstream.stream.drain import drained
from spendstream.worker.schema import migrate

FILL_SPAN = timedelta(hours=12)  # the prefilled events lie in the day's first 12 hours


# CPU and wall seconds per refresh statement (and per kind of mark statement) in the window.
STEPS: defaultdict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])


class TimedWriter(LedgerWriter):
    """A writer that adds each refresh statement's CPU and wall seconds to ``STEPS``."""

    def _run(self, sql: str, unit: str, starts: list[Any]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        super()._run(sql, unit, starts)
        # A statement is named by its target table and the unit of its windows.
        entry = STEPS[f"{unit} {sql.split()[2]}"]
        entry[0] += time.process_time() - cpu
        entry[1] += time.perf_counter() - wall


def time_marks() -> None:
    """Count the marks' statements (``sinks.open_windows``) in ``STEPS`` too."""
    for name in ("mark", "marked", "done", "server_now"):
        original = getattr(open_windows, name)

        def timed(*given: Any, _original: Any = original, _name: str = name) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return _original(*given)
            finally:
                entry = STEPS[f"marks {_name}"]
                entry[0] += time.process_time() - cpu
                entry[1] += time.perf_counter() - wall

        setattr(open_windows, name, timed)


def prefill(client: Any, start: int, times: list[datetime], users: int) -> None:
    """Events at ``times`` (ids from ``start``) inserted in bulk; then every rollup of the day
    rebuilt from the ledger and nothing left marked."""
    writer = LedgerWriter(client, 1)
    for chunk in range(0, len(times), 50_000):
        part = times[chunk : chunk + 50_000]
        writer.insert(stream_entries(f"fill{start}", part, users, seed=start + chunk))
    rebuild_rollups(client, DAY, DAY + timedelta(days=1))
    client.command("TRUNCATE TABLE rollup_pending")


def paced_window(
    writer: TimedWriter,
    batches: list[list[LedgerEntry]],
    stream_time: list[Any],
    args: argparse.Namespace,
    settle_now: Callable[[int, int, int], bool],
) -> dict[str, Any]:
    """Feed ``batches`` at ``pace`` events/s; the figures of the module doc."""
    STEPS.clear()
    totals: dict[str, float] = defaultdict(float)
    events = settles = late = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for k, batch in enumerate(batches):
        pace = args.pace
        arrival = wall0 + (k + 1) * len(batch) / pace
        waiting = arrival - time.perf_counter()
        if waiting > 0:
            time.sleep(waiting)
        backlog = 0 if waiting > 0 else int((time.perf_counter() - arrival) * pace)
        late += backlog > 0
        times = [entry.event.event_time for entry in batch]
        stream_time[0] = max(times)
        cpu = time.process_time()
        ledger_columns(batch, 1, datetime.now(UTC), scaled_money=True)
        totals["build_cpu"] += time.process_time() - cpu
        for key, action, given in (
            ("insert", writer.insert, (batch,)),
            ("refresh", writer.refresh_rollups, (times,)),
        ):
            wall, cpu = time.perf_counter(), time.process_time()
            action(*given)
            totals[f"{key}_wall"] += time.perf_counter() - wall
            totals[f"{key}_cpu"] += time.process_time() - cpu
        if settle_now(backlog, len(batch), args.paced_batch):
            wall, cpu = time.perf_counter(), time.process_time()
            writer.settle()
            totals["refresh_wall"] += time.perf_counter() - wall
            totals["refresh_cpu"] += time.process_time() - cpu
            settles += 1
        events += len(batch)
    total_cpu = time.process_time() - cpu0 - totals["build_cpu"]
    busy = totals["insert_wall"] + totals["refresh_wall"]
    us = 1e6 / events
    return {
        "events": events,
        "batches": len(batches),
        "late_batches": late,
        "settles": settles,
        "insert_cpu_us": round(totals["insert_cpu"] * us, 2),
        "columns_build_cpu_us": round(totals["build_cpu"] * us, 2),
        "refresh_cpu_us": round(totals["refresh_cpu"] * us, 2),
        "all_cpu_us": round(total_cpu * us, 2),
        "insert_wall_us": round(totals["insert_wall"] * us, 2),
        "refresh_wall_us": round(totals["refresh_wall"] * us, 2),
        "capacity_events_per_s": round(events / busy) if busy else 0,
        "steps_cpu_us": {
            name: round(cpu * us, 2)
            for name, (cpu, _wall) in sorted(STEPS.items(), key=lambda kv: -kv[1][0])
        },
    }


def run_paced(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    client = connect(f"chdb://{data}", "dayfill")
    migrate(client)
    stream_time = [DAY + FILL_SPAN]
    deferral = (
        None
        if args.refresh == "per-batch"
        else Deferral(clock=lambda: stream_time[0], minutes=args.refresh == "deferred-minutes")
    )
    writer = TimedWriter(client, price_version=1, deferral=deferral)
    time_marks()
    results: dict[str, Any] = {}
    filled = 0
    clock = DAY + FILL_SPAN + timedelta(seconds=30)  # the windows cross minute boundaries
    step = timedelta(seconds=1 / args.pace)
    for level in sorted(args.checkpoints):
        started = time.perf_counter()
        count = level - filled
        if args.fill == "spread":  # over the fill span, each level's share covering all of it
            fill = [DAY + FILL_SPAN / count * (i + 0.5) for i in range(count)]
        else:  # the stream itself, just before the window: the open hour holds them
            fill = [clock + step * i for i in range(count)]
            clock += step * count
        prefill(client, filled, fill, args.users)
        filled = level
        count = int(args.window_s * args.pace)
        times = [clock + step * i for i in range(count)]
        clock += step * count
        batches = [
            stream_entries(f"w{level}", times[i : i + args.paced_batch], args.users, seed=i)
            for i in range(0, count, args.paced_batch)
        ]
        print(f"[dayfill] {level:,}: filled in {time.perf_counter() - started:.0f} s", flush=True)
        figures = paced_window(writer, batches, stream_time, args, settles_when(args.settle))
        writer.settle()
        figures["rollups_equal_ledger"] = rollups_equal_ledger(client)
        results[str(level)] = figures
        print(f"[dayfill] {level:,} + paced window: {figures}", flush=True)
    client.close()
    return results


def settles_when(policy: str) -> Callable[[int, int, int], bool]:
    """When the agent settles after a batch: ``backlog`` (no backlog, whatever the batch: the
    agent before issue 29 part 2 was finished) or ``drained`` (``stream.drain.drained``)."""
    if policy == "backlog":
        return lambda backlog, _taken, _size: backlog == 0
    return drained
