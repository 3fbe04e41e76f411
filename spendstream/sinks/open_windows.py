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

The insights' hourly cells (``sinks.insight_cells``) are a window of their own, unit ``cells``
(an hour), *held*: the timer refreshes the open hour's rollups but not its cells, which are
refreshed at the hour's close and on a drain (a settle) only. At the timer they re-read the whole
open hour from ``ledger FINAL``, a cost that grew with the hour (up to 22 µs per event at 3 M
events in it: docs/benchmarks-ingest.md, sessions 11 and 12). Durability and exactness come from
two marks. A batch marks no ``cells`` window: the hour's own mark (made every batch) stands for
them, and a flush that refreshes an hour that has closed (or any hour, on a settle) refreshes its
cells too, so a dead writer's hour mark brings its cells back, as does one left by a release
before this one. A timer flush that holds an hour's cells marks them in ``rollup_pending_cells``
(migration 1007: ``rollup_pending``'s columns and rules, in a table of its own so that a release
before it, which knows no unit ``cells``, never meets one) *before* it records the hour done, and
a flush that refreshes them records them done as of its ``t0``. So while an hour's cells lag the
ledger, that hour is marked in one of the two tables, and the cells' readers take every such hour
from the ledger (``insight_cells.cells_source``): a read of the open hour, or of an hour that has
just closed, stays exact while its cells lag (a read racing a batch may see it in the ledger a
few milliseconds before its mark, as a rollup's read always could).
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

# Held units' open windows wait for their close or a drain, never the timer (module doc); their
# marks are kept in their own table.
CELLS = "cells"
HELD_UNITS = frozenset({CELLS})
CELLS_PENDING_TABLE = "rollup_pending_cells"
CELLS_PENDING_DDL = PENDING_DDL.replace(PENDING_TABLE, CELLS_PENDING_TABLE, 1)
CELLS_PENDING_TTL = PENDING_TTL.replace(PENDING_TABLE, CELLS_PENDING_TABLE, 1)
MARK_TABLES = (PENDING_TABLE, CELLS_PENDING_TABLE)

UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, CELLS: 3600}
# The cells are recomputed from the ledger, not from finer rollups: nothing encloses them.
COARSER_UNITS = {"minute": ("hour", "day"), "hour": ("day",), "day": (), CELLS: ()}
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

    def held(self, window: Window) -> bool:
        """Whether ``window`` waits for its close or a drain, not the timer (module doc)."""
        return window[0] in HELD_UNITS and self.is_open(window)

    def cells(self, windows: set[Window], settling: bool) -> tuple[set[Window], set[Window]]:
        """The cells of the hours in ``windows``, marked or not (module doc): (those refreshed
        with them: an hour's that has closed, every hour's when ``settling``; those held)."""
        cells = {(CELLS, start) for unit, start in windows if unit == "hour"}
        held = set() if settling else set(filter(self.held, cells))
        return cells - held, held

    def due(self) -> set[Window]:
        """The marked windows to flush now: all of them but the open held ones when the timer
        is due, else those that have closed (an hour that just ended: its day stays open and
        waits), a late minute once its hour has."""
        if self.timer_due():
            return {window for window in self.pending if not self.held(window)}
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
        if all(map(self.held, self.pending)):  # a full flush restarts the timer
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
    """Record ``windows`` as waiting for a flush (after their minute rows are written); held
    ones are not marked, their hour's mark stands for them (module doc)."""
    _record(client, [w for w in windows if w[0] not in HELD_UNITS], "now64(6)", {"done": False})


def hold(client: Client, windows: Iterable[Window]) -> None:
    """Record held ``windows`` whose hour a timer flush refreshes without them as waiting (before
    that hour is recorded done: module doc)."""
    _record(client, windows, "now64(6)", {"done": False})


def server_now(client: Client) -> str:
    """The server's ``now64(6)`` as text (kept exact: it versions the done marks)."""
    return str(client.command("SELECT toString(now64(6, 'UTC'))"))


def marked(client: Client, tables: Iterable[str] = (PENDING_TABLE,)) -> set[Window]:
    """Every window marked by any writer in ``tables`` and not flushed since (the writer reads
    :data:`MARK_TABLES`)."""
    rows = client.query(
        " UNION ALL ".join(
            f"SELECT unit, toUnixTimestamp(window_start) FROM {table} FINAL WHERE NOT done"
            for table in tables
        )
    ).result_rows
    return {(str(unit), datetime.fromtimestamp(int(start), UTC)) for unit, start in rows}


def done(client: Client, windows: Iterable[Window], as_of: str) -> None:
    """Record ``windows`` flushed with every mark made up to ``as_of`` (from :func:`server_now`)."""
    at = "toDateTime64({as_of:String}, 6, 'UTC')"
    _record(client, windows, at, {"done": True, "as_of": as_of})


def _record(client: Client, windows: Iterable[Window], at: str, extra: dict[str, object]) -> None:
    ordered = sorted(windows)
    for table in MARK_TABLES:
        chosen = [w for w in ordered if (w[0] in HELD_UNITS) == (table == CELLS_PENDING_TABLE)]
        if not chosen:
            continue
        client.command(
            _MARK.replace("{at}", at).replace(PENDING_TABLE, table, 1),
            parameters={
                "units": [unit for unit, _ in chosen],
                "starts": [start for _, start in chosen],
                **extra,
            },
        )


def by_unit(windows: Iterable[Window]) -> dict[str, list[datetime]]:
    """Sorted window starts per unit."""
    grouped: dict[str, set[datetime]] = {}
    for unit, start in windows:
        grouped.setdefault(unit, set()).add(start)
    return {unit: sorted(starts) for unit, starts in grouped.items()}
