"""The open minute, hour and day, refreshed when the stream drains or on a timer, not per batch.

Recomputing a day window reads every hour of it, so a refresh per batch costs more as the day
fills; recomputing a minute re-reads it from ``ledger FINAL`` in several statements, so at a
steady 10 k events/s (600 k events a minute) every batch re-read up to the whole minute
(docs/benchmarks-ingest.md). A :class:`LedgerWriter` given a :class:`Deferral` recomputes a
batch's closed windows at once (late events) but only *marks* the hour and day that are still
open (that contain the clock's now, or lie after it), and the open minutes too with
``Deferral(minutes=True)`` (the worker's), which also marks the late minutes of an open hour
(below). The marked windows are refreshed together (a
*flush*), minutes first, then hours and days from them:

- when the stream has drained (``LedgerWriter.settle``, called by the pipeline once the worker has
  caught up with its partitions and the stream no longer fills its batches, ``stream.drain``, or
  once it has been idle), so rollups equal the ledger after every drain;
- when a marked window has closed (the clock crossed the minute or the hour), the closed ones
  alone, so a read of a closed period (``sinks.windows``: the open hour always comes from the
  ledger) never waits; a *late* minute (already closed when a batch wrote to it, e.g. a worker
  catching up a backlog) of an hour still open is the exception: it is marked like an open
  minute and waits for the timer, a drain or its hour's close, because recomputing it at once
  re-read the whole minute from ``ledger FINAL`` for every batch that wrote to it (seven
  statements, ~140 ms of ClickHouse CPU per batch of 2,000 events: docs/benchmarks-ingest.md,
  "what ClickHouse does per batch"). What reads it trails the ledger as for an open minute;
  what reads the hour is unaffected (the open hour comes from the ledger);
- otherwise at most every ``max(min_interval_s, cost_factor × the last flush's duration)``: the
  flush's share of the ledger thread stays under ``1 / cost_factor`` however full the day is;
  such a flush also takes every writer's marked windows that have closed (a dead writer's last
  minutes, which no live writer's batch may touch again), so they do not wait for a drain.

What a deferred minute delays while the stream is busy (it fills its batches): the tables read
at minute level straight from their rows (``agent_minute`` for sessions and a run's bounds,
``agent_runs`` for the runaway alert and the run lists, the prompt sightings and repeats,
``rollup_minute`` for ``spendstream dev``'s summary) trail the ledger by at most that interval;
after a drain they equal it, as before. Readers of spend over a period are unaffected: the
open hour comes from the ledger, closed hours are flushed as they close.

Marks are durable (``rollup_pending``, migration 20) so a SIGKILL, a rebalance or another worker
cannot lose one: a batch is marked after its ledger rows are written and before it is
acknowledged, and a flush reads every worker's marks. A flush first reads the server clock
``t0``, refreshes, then records its windows done *as of t0*: ``rollup_pending`` is a
ReplacingMergeTree on ``marked_at``, so a mark made after ``t0`` (whose rows the flush may have
missed) outlives it and is flushed again. A flush also refreshes (after them) the hour and day
holding every window it refreshes, marked or not: a done mark of the hour recorded by one writer
may hide another's mark made when a minute of that hour was still open and unflushed, and once
that minute is flushed nothing else would rebuild its hour and day from it. All times are the
ClickHouse server's ``now64``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI loads the schema (and so this DDL) without the driver
    from clickhouse_connect.driver.client import Client

PENDING_TABLE = "rollup_pending"
PENDING_DDL = f"""
CREATE TABLE IF NOT EXISTS {PENDING_TABLE} (
    unit LowCardinality(String),
    window_start DateTime('UTC'),
    marked_at DateTime64(6, 'UTC'),
    done Bool
) ENGINE = ReplacingMergeTree(marked_at)
ORDER BY (unit, window_start)
"""

# Done marks are kept a week, then dropped at a merge: a minute's window is marked and done
# ~1,440 times a day, and every flush reads the table with FINAL. An older mark a dropped done
# row had superseded (still in an unmerged part) only makes its window be refreshed once more.
PENDING_TTL = (
    f"ALTER TABLE {PENDING_TABLE} MODIFY TTL toDateTime(marked_at) + INTERVAL 7 DAY WHERE done"
)

UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
COARSER_UNITS = {"minute": ("hour", "day"), "hour": ("day",), "day": ()}
Window = tuple[str, datetime]  # (unit, window start, UTC)

_MARK = (
    f"INSERT INTO {PENDING_TABLE} (unit, window_start, marked_at, done) "
    "SELECT w.1, w.2, {at}, {done:Bool} "
    "FROM (SELECT arrayJoin(arrayZip({units:Array(String)}, {starts:Array(DateTime)})) AS w)"
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deferral:
    """When the open windows are flushed (module doc). ``clock`` says which windows are open
    (a benchmark replaying a past day passes the stream's time); durations are real time."""

    clock: Callable[[], datetime] = _utc_now
    minutes: bool = False  # defer the open minutes too (the worker does; tests choose)
    min_interval_s: float = 2.0
    cost_factor: float = 20.0
    pending: set[Window] = field(default_factory=set)
    # Pending minutes that were already closed when marked: due at the timer or their hour's close.
    late: set[Window] = field(default_factory=set)
    last_end: float = field(default_factory=time.monotonic)
    last_duration: float = 0.0

    def is_open(self, window: Window) -> bool:
        unit, start = window
        return start + timedelta(seconds=UNIT_SECONDS[unit]) > self.clock()

    def defers(self, window: Window) -> bool:
        """Whether a batch's ``window`` waits for a flush: open (a minute only with
        ``minutes``), or a late minute of an open hour (module doc)."""
        if window[0] != "minute":
            return self.is_open(window)
        return self.minutes and self.is_open(hour_of(window))

    def due(self) -> set[Window]:
        """The marked windows to flush now: all of them when the timer is due, else those that
        have closed (an hour that just ended: its day stays open and waits), a late minute
        once its hour has."""
        if self.timer_due():
            return set(self.pending)
        return {
            window
            for window in self.pending
            if not self.is_open(hour_of(window) if window in self.late else window)
        }

    def timer_due(self) -> bool:
        """Whether the cost-bounded timer has run out since the last full flush."""
        waited = time.monotonic() - self.last_end
        return waited >= max(self.min_interval_s, self.cost_factor * self.last_duration)

    def flushed(self, windows: set[Window], started: float) -> None:
        """Record a flush of ``windows`` that began at ``started`` (``time.monotonic``)."""
        self.pending -= windows
        self.late -= windows
        if not self.pending:  # a full flush restarts the timer
            self.last_end = time.monotonic()
            self.last_duration = self.last_end - started


def enclosing(window: Window, unit: str) -> Window:
    """The ``unit`` window holding ``window`` (UTC, aligned as ``sinks.ledger.window_starts``)."""
    size = UNIT_SECONDS[unit]
    return (unit, datetime.fromtimestamp(int(window[1].timestamp()) // size * size, UTC))


def hour_of(window: Window) -> Window:
    """The hour holding a minute ``window`` (any other window unchanged)."""
    return enclosing(window, "hour") if window[0] == "minute" else window


def mark(client: Client, windows: Iterable[Window]) -> None:
    """Record ``windows`` as waiting for a flush (after their minute rows are written)."""
    _record(client, windows, "now64(6)", {"done": False})


def server_now(client: Client) -> str:
    """The server's ``now64(6)`` as text (kept exact: it versions the done marks)."""
    return str(client.command("SELECT toString(now64(6, 'UTC'))"))


def marked(client: Client) -> set[Window]:
    """Every window marked by any writer and not flushed since."""
    rows = client.query(
        f"SELECT unit, toUnixTimestamp(window_start) FROM {PENDING_TABLE} FINAL WHERE NOT done"
    ).result_rows
    return {(str(unit), datetime.fromtimestamp(int(start), UTC)) for unit, start in rows}


def done(client: Client, windows: Iterable[Window], as_of: str) -> None:
    """Record ``windows`` flushed with every mark made up to ``as_of`` (from :func:`server_now`)."""
    at = "toDateTime64({as_of:String}, 6, 'UTC')"
    _record(client, windows, at, {"done": True, "as_of": as_of})


def _record(client: Client, windows: Iterable[Window], at: str, extra: dict[str, object]) -> None:
    ordered = sorted(windows)
    if not ordered:
        return
    client.command(
        _MARK.replace("{at}", at),
        parameters={
            "units": [unit for unit, _ in ordered],
            "starts": [start for _, start in ordered],
            **extra,
        },
    )


def by_unit(windows: Iterable[Window]) -> dict[str, list[datetime]]:
    """Sorted window starts per unit."""
    grouped: dict[str, set[datetime]] = {}
    for unit, start in windows:
        grouped.setdefault(unit, set()).add(start)
    return {unit: sorted(starts) for unit, starts in grouped.items()}
