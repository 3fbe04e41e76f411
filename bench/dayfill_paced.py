"""``bench.dayfill --pace``: a steady stream on a day already holding 100 k, 1 M, 3 M events.

The day is filled first, inserted in bulk, every rollup rebuilt from the ledger and nothing left
marked: with ``--fill recent`` (default) the filling events are the stream itself at the pace just
before the window (the open hour and minute hold them: a busy hour), with ``--fill spread`` they
lie over the day's first 12 hours (each level's share covering all of them). Then a window of
``--window-s`` seconds of a stream at ``--pace`` events/s (``--pack`` events per Kafka message) is
fed to ``LedgerWriter`` in the batches the agent's ``take(--paced-batch, within=--within)`` would
cut from it in real time (:func:`take`: full, or ``within`` after its first event, or at once
with whatever has arrived when the writer is late).
After a batch the writer *settles* (flushes everything deferred) when the agent would:
``--settle steady`` (default, the agent since session 11: drained and not ``stream.drain.steady``),
``--settle drained`` as ``stream.drain.drained`` says (session 10), ``--settle backlog`` whenever
nothing waits behind the batch (the agent before issue 29 part 2). The stream's clock (the writer's
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
from bench.statements import statement_costs
from spendstream.sinks import open_windows
from spendstream.sinks.client import connect
from spendstream.sinks.entry import ledger_columns
from spendstream.sinks.ledger import Deferral, LedgerEntry, LedgerWriter, rebuild_rollups
from spendstream.stream.app import IDLE_BATCHES
from spendstream.stream.drain import drained, steady
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
    window: list[LedgerEntry],
    stream_time: list[Any],
    args: argparse.Namespace,
    settle_now: Callable[[int, int, int, float], bool],
) -> dict[str, Any]:
    """Feed ``window``'s events at ``pace`` events/s in the agent's batches; the figures of the
    module doc."""
    STEPS.clear()
    totals: dict[str, float] = defaultdict(float)
    events = settles = late = batches = 0
    lo = server_time(writer.client) if args.statements else None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while events < len(window):
        count, backlog, gap = take(events, len(window), wall0, args)
        batch = window[events : events + count]
        batches += 1
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
        messages = -(-len(batch) // args.pack)  # the agent counts Kafka messages, not events
        if settle_now(backlog, messages, args.paced_batch, gap):
            wall, cpu = time.perf_counter(), time.process_time()
            writer.settle()
            totals["refresh_wall"] += time.perf_counter() - wall
            totals["refresh_cpu"] += time.process_time() - cpu
            settles += 1
        events += len(batch)
    total_cpu = time.process_time() - cpu0 - totals["build_cpu"]
    busy = totals["insert_wall"] + totals["refresh_wall"]
    us = 1e6 / events
    split = {}
    if lo is not None:  # what ClickHouse logged per statement kind and per merge
        costs = statement_costs(writer.client, lo, server_time(writer.client), batches, events)
        split = {
            "logged_cpu_us": round(costs["logged_cpu_s"] * us, 2),
            "statements": [
                {key: row[key] for key in SPLIT_KEYS} for row in costs["statements"][:25]
            ],
        }
    return {
        "events": events,
        "batches": batches,
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
        **split,
    }


SPLIT_KEYS = ("kind", "runs", "cpu_us_per_event", "read_rows_per_event")


def take(taken: int, total: int, wall0: float, args: argparse.Namespace) -> tuple[int, int, float]:
    """The agent's next batch, as ``take(--paced-batch messages, within=--within)`` cuts it from
    a stream of ``--pace`` events/s (``--pack`` per message) that began at ``wall0``: it waits
    for the first pending event, then until the batch is full or ``within`` has passed since,
    and takes what has arrived. Returns (events, events left behind, seconds waited)."""
    cap, pace = args.paced_batch * args.pack, args.pace
    first = wall0 + (taken + 1) / pace  # when the first pending event arrives
    cut = min(first + args.within, wall0 + (taken + cap) / pace)
    waited = max(0.0, cut - time.perf_counter())
    if waited:
        time.sleep(waited)
    arrived = min(total, int((time.perf_counter() - wall0) * pace)) - taken
    count = max(1, min(cap, arrived, total - taken))
    return count, max(0, arrived - count), waited


def server_time(client: Any) -> datetime:
    """The server's clock (query_log's times are the server's)."""
    return datetime.fromisoformat(str(client.command("SELECT toString(now64(6))")))


# ``--statements``: chDB's own logs of every statement and part event (bench.statements).
LOGS_CONFIG = """<clickhouse>
    <query_log><database>system</database><table>query_log</table>
        <flush_interval_milliseconds>1000</flush_interval_milliseconds></query_log>
    <part_log><database>system</database><table>part_log</table>
        <flush_interval_milliseconds>1000</flush_interval_milliseconds></part_log>
</clickhouse>
"""


def run_paced(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.statements:  # chDB in this process reads a config file naming its logs
        config = data.with_name("logs-config.xml")
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(LOGS_CONFIG)
        options["chdb_options"] = {"config-file": str(config)}
    client = connect(f"chdb://{data}", "dayfill", **options)
    migrate(client)
    if args.ledger_settings:  # MergeTree settings tried on the ledger (k=v,k=v)
        client.command(f"ALTER TABLE ledger MODIFY SETTING {args.ledger_settings}")
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
        window = stream_entries(f"w{level}", times, args.users, seed=level)
        print(f"[dayfill] {level:,}: filled in {time.perf_counter() - started:.0f} s", flush=True)
        settle_now = settles_when(args.settle, IDLE_BATCHES * args.within)
        figures = paced_window(writer, window, stream_time, args, settle_now)
        writer.settle()
        figures["rollups_equal_ledger"] = rollups_equal_ledger(client)
        results[str(level)] = figures
        print(f"[dayfill] {level:,} + paced window: {figures}", flush=True)
    client.close()
    return results


def settles_when(policy: str, idle_s: float) -> Callable[[int, int, int, float], bool]:
    """When the agent settles after a batch (given its backlog, messages, batch size and the gap
    since the last batch): ``backlog`` (no backlog, whatever the batch: the agent before issue
    29 part 2), ``drained`` (``stream.drain.drained``: session 10's agent) or ``steady`` (drained
    and not ``stream.drain.steady``: the agent since session 11)."""
    if policy == "backlog":
        return lambda backlog, _taken, _size, _gap: backlog == 0
    if policy == "drained":
        return lambda backlog, taken, size, _gap: drained(backlog, taken, size)
    previous = [False]

    def settle(backlog: int, taken: int, size: int, gap_s: float) -> bool:
        caught_up = drained(backlog, taken, size)
        skip = steady(caught_up, previous[0], gap_s, idle_s)
        previous[0] = caught_up
        return caught_up and not skip

    return settle
