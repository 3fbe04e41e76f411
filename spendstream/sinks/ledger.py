"""The ledger writer: one row per priced event, then rollups recomputed for the touched windows.

Contract: :meth:`LedgerWriter.write` is blocking and all-or-nothing per call (one INSERT), safe to
retry with the same rows (insert deduplication token + ReplacingMergeTree on the event). Call it
from one thread; the stream worker runs it in a dedicated executor so the event loop keeps
heartbeating while ClickHouse works (or is down).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from operator import attrgetter

from clickhouse_connect.datatypes.base import ClickHouseType
from clickhouse_connect.driver.client import Client

from spendstream.sinks import open_windows
from spendstream.sinks.columns import built_per_block, insert_types, scaled_integer
from spendstream.sinks.entry import (
    BLOCK_ENTRIES,
    LEDGER_COLUMNS,
    MONEY_COLUMNS,
    KafkaOrigin,
    LedgerEntry,
    block_columns,
)
from spendstream.sinks.insight_cells import REFRESH_CELLS
from spendstream.sinks.migrations import (
    AGENT_DIMENSIONS,
    AGENT_TABLES,
    CUSTOMER_DIMENSIONS,
    CUSTOMER_TABLES,
    DRIVER_TABLE_DIMENSIONS,
    DRIVER_TABLES,
    LEAN_DIMENSIONS,
    LEAN_DRIVER_DIMENSIONS,
    LEAN_DRIVER_TABLES,
    LEAN_TABLES,
    MEASURE_FROM_LEDGER,
    MEASURES,
    ROLLUP_DIMENSIONS,
    ROLLUP_TABLES,
    UNIT_ROLLUP_COLUMNS,
    USER_DIMENSIONS,
    USER_TABLES,
)
from spendstream.sinks.minute_fanout import MINUTE_FANOUT
from spendstream.sinks.open_windows import Deferral
from spendstream.sinks.prompt_sightings import (
    BACKFILL_REPEATS,
    BACKFILL_SIGHTINGS,
    REFRESH_REPEATS,
    REFRESH_SIGHTINGS,
)
from spendstream.sinks.run_rollup import RUNS_REFRESH_SQL
from spendstream.sinks.team_repeats import BACKFILL_TEAM_REPEATS, REFRESH_TEAM_REPEATS

EVENT_ID = attrgetter("event.event_id")


def window_starts(times: Iterable[datetime], unit: str) -> list[datetime]:
    """Distinct window starts (UTC, aligned to ``unit``) covering ``times``, sorted."""
    size = open_windows.UNIT_SECONDS[unit]
    starts = {int(moment.timestamp()) // size * size for moment in times}
    return [datetime.fromtimestamp(start, UTC) for start in sorted(starts)]


def _rollup_columns(dims: Sequence[str] = ROLLUP_DIMENSIONS) -> str:
    """The rollup columns every INSERT…SELECT below fills, in its SELECT order."""
    units = (name for name, _kind, _sum in UNIT_ROLLUP_COLUMNS)
    names = ("window_start", *dims, *MEASURES, *units, "computed_at")
    return ", ".join(names)


def _unit_sums() -> str:
    return ", ".join(f"{agg}({name}) AS {name}" for name, _kind, agg in UNIT_ROLLUP_COLUMNS)


def rollup_from_ledger_sql(
    unit: str, target: str | None = None, dimensions: Sequence[str] = ROLLUP_DIMENSIONS
) -> str:
    """INSERT…SELECT recomputing ``unit`` windows of ``target`` (default: the full ``unit``
    rollup) over ``dimensions`` from the deduplicated ledger.

    Parameters: ``starts`` (window starts), ``lo``/``hi`` (time range bounding them).
    """
    dims = ", ".join(dimensions)
    measures = ", ".join(f"{sql} AS {name}" for name, sql in MEASURE_FROM_LEDGER.items())
    return (
        f"INSERT INTO {target or ROLLUP_TABLES[unit]} ({_rollup_columns(dimensions)}) "
        f"SELECT toStartOfInterval(event_time, INTERVAL 1 {unit}) AS window_start, {dims}, "
        f"{measures}, {_unit_sums()}, now64(6) "
        "FROM ledger FINAL "
        "WHERE event_time >= {lo:DateTime64(3)} AND event_time < {hi:DateTime64(3)} "
        "AND toDateTime(toStartOfInterval(event_time, INTERVAL 1 " + unit + ")) "
        "IN {starts:Array(DateTime)} "
        f"GROUP BY window_start, {dims}"
    )


def rollup_from_rollup_sql(
    unit: str,
    source_unit: str,
    target: str | None = None,
    source: str | None = None,
    dims: Sequence[str] = ROLLUP_DIMENSIONS,
) -> str:
    """INSERT…SELECT recomputing ``unit`` windows of ``target`` (default: the full ``unit``
    rollup) from the finer ``source`` (default: the full ``source_unit`` rollup) over ``dims``."""
    target = target or ROLLUP_TABLES[unit]
    source = source or ROLLUP_TABLES[source_unit]
    group = ", ".join(dims)
    sums = ", ".join(f"sum({name}) AS {name}" for name in MEASURES)
    return (
        f"INSERT INTO {target} ({_rollup_columns(dims)}) "
        f"SELECT toStartOfInterval(window_start, INTERVAL 1 {unit}) AS ws, {group}, {sums}, "
        f"{_unit_sums()}, now64(6) FROM {source} FINAL "
        "WHERE window_start >= {lo:DateTime} AND window_start < {hi:DateTime} "
        f"AND toStartOfInterval(window_start, INTERVAL 1 {unit}) IN {{starts:Array(DateTime)}} "
        f"GROUP BY ws, {group}"
    )


# The runs' minutes: with the drivers', both come from one read (sinks.minute_fanout).
AGENT_MINUTE = (
    "minute",
    rollup_from_ledger_sql("minute", AGENT_TABLES["minute"], AGENT_DIMENSIONS),
)

# (unit, SQL) refreshed after the minute windows, in order: each reads the one before it.
REFRESH_STEPS: tuple[tuple[str, str], ...] = (
    ("hour", rollup_from_rollup_sql("hour", "minute")),
    ("day", rollup_from_rollup_sql("day", "hour")),
    (
        "hour",
        rollup_from_rollup_sql("hour", "hour", LEAN_TABLES["hour"], dims=LEAN_DIMENSIONS),
    ),
    (
        "day",
        rollup_from_rollup_sql(
            "day", "hour", LEAN_TABLES["day"], LEAN_TABLES["hour"], LEAN_DIMENSIONS
        ),
    ),
    ("hour", rollup_from_rollup_sql("hour", "hour", USER_TABLES["hour"], dims=USER_DIMENSIONS)),
    (
        "day",
        rollup_from_rollup_sql(
            "day", "hour", USER_TABLES["day"], USER_TABLES["hour"], USER_DIMENSIONS
        ),
    ),
    # Explain's drivers rollups (batch as a dimension): the touched minutes again from the
    # ledger, then hour and day from them (docs/explain.md measures the cost).
    (
        "minute",
        rollup_from_ledger_sql("minute", DRIVER_TABLES["minute"], DRIVER_TABLE_DIMENSIONS),
    ),
    *(
        (
            unit,
            rollup_from_rollup_sql(
                unit, source, DRIVER_TABLES[unit], DRIVER_TABLES[source], DRIVER_TABLE_DIMENSIONS
            ),
        )
        for unit, source in (("hour", "minute"), ("day", "hour"))
    ),
    # Explain's lean drivers (no user, migration 70): hour from the drivers hour, day from it.
    *(
        (
            unit,
            rollup_from_rollup_sql(
                unit, "hour", LEAN_DRIVER_TABLES[unit], source, LEAN_DRIVER_DIMENSIONS
            ),
        )
        for unit, source in (
            ("hour", DRIVER_TABLES["hour"]),
            ("day", LEAN_DRIVER_TABLES["hour"]),
        )
    ),
    # Runs and customers (docs/agents.md): the touched minutes per run, then customer hours
    # and days from them.
    AGENT_MINUTE,
    *(
        (
            unit,
            rollup_from_rollup_sql(unit, unit, CUSTOMER_TABLES[unit], source, CUSTOMER_DIMENSIONS),
        )
        for unit, source in (("hour", AGENT_TABLES["minute"]), ("day", CUSTOMER_TABLES["hour"]))
    ),
    # The insights' hourly cells (sinks.insight_cells): the touched hours from the ledger; the
    # open hour's at its close and on a drain only (held: sinks.open_windows).
    (open_windows.CELLS, REFRESH_CELLS),
    # One row per run (migration 1102): the touched minutes' runs, from their minute rows.
    ("minute", RUNS_REFRESH_SQL),
    # Prompt sightings (sinks.prompt_sightings): the touched minutes' prompts, recomputed.
    ("minute", REFRESH_SIGHTINGS),
    # Their repeats (the few sightings caching and embeddings read), from the sightings.
    ("minute", REFRESH_REPEATS),
    # The same per team (sinks.team_repeats): what team-scoped caching and embeddings read.
    ("minute", REFRESH_TEAM_REPEATS),
)


# Explain's drivers minutes hold every dimension and measure of rollup_minute (and more): when a
# writer refreshes them, rollup_minute is summed from them, one read of the minutes from
# ledger FINAL fewer per flush (session 12: 4 statements read the same minutes).
DRIVERS_MINUTE = (
    "minute",
    rollup_from_ledger_sql("minute", DRIVER_TABLES["minute"], DRIVER_TABLE_DIMENSIONS),
)
MINUTE_FROM_DRIVERS = rollup_from_rollup_sql("minute", "minute", source=DRIVER_TABLES["minute"])


class LedgerWriter:
    """Writes ledger rows and keeps the minute/hour/day rollups in step with them."""

    def __init__(
        self,
        client: Client,
        price_version: int,
        steps: Sequence[tuple[str, str]] = REFRESH_STEPS,
        deferral: Deferral | None = None,
        fanout: bool = True,
    ) -> None:
        """``steps``: the rollups refreshed after the minute windows (see REFRESH_STEPS);
        ``deferral``: refresh the open hour and day on a drain or a timer, not per batch;
        ``fanout``: the drivers' and the runs' minutes from one read (migration 1008), else
        each from its own (the release before)."""
        self.client = client
        self.fanout = fanout
        self.price_version = price_version
        self.steps = tuple(steps)
        self.units = {unit for unit, _sql in self.steps}  # the units this writer refreshes
        self.deferral = deferral
        self.column_types: list[ClickHouseType] | None = None  # inserts skip a DESCRIBE each

    def ledger_column_types(self) -> list[ClickHouseType]:
        if self.column_types is None:
            rows = self.client.query(
                "SELECT name, type FROM system.columns "
                "WHERE database = currentDatabase() AND table = 'ledger'"
            ).result_rows
            found = {str(name): str(kind) for name, kind in rows}
            types = insert_types([found[name] for name in LEDGER_COLUMNS])
            self.column_types = [
                scaled_integer(kind) if name in MONEY_COLUMNS else kind
                for name, kind in zip(LEDGER_COLUMNS, types, strict=True)
            ]
        return self.column_types

    def write(self, entries: Sequence[LedgerEntry]) -> None:
        """Insert ``entries`` (one INSERT), then recompute every window they touch."""
        self.insert(entries)
        self.refresh_rollups([entry.event.event_time for entry in entries])

    def insert(self, entries: Sequence[LedgerEntry]) -> None:
        """Insert ``entries`` in one all-or-nothing INSERT (rollups untouched)."""
        if not entries:
            return
        ids = sorted(map(EVENT_ID, entries))
        # Same events at the same price version: a retry, stored once. A newer version is not.
        token = hashlib.sha256(
            f"{self.price_version}\n".encode() + "\n".join(ids).encode()
        ).hexdigest()
        context = self.client.create_insert_context(
            "ledger",
            LEDGER_COLUMNS,
            column_types=self.ledger_column_types(),
            column_oriented=True,
            settings={"insert_deduplication_token": token},
        )
        # Each block's columns built as the driver writes that block (sinks.columns).
        build = partial(
            block_columns,
            price_version=self.price_version,
            ingested_at=datetime.now(UTC),
            scaled_money=True,
        )
        failure = built_per_block(context, entries, build, BLOCK_ENTRIES)
        try:
            self.client.data_insert(context)
        except Exception:
            if failure.error is not None:  # the cause, whatever the transport made of it
                raise failure.error from None
            raise

    def ping(self) -> None:
        """Raise when ClickHouse cannot answer a trivial query (tells outages from bad rows)."""
        self.client.command("SELECT 1")

    def refresh_rollups(self, times: Sequence[datetime]) -> None:
        """Recompute the minute windows containing ``times`` from the ledger, then each step's
        windows from the rollup before it (full hour and day, then the lean hour and day).

        With a :class:`Deferral`, the hours and days still open (and the open minutes, when it
        defers minutes) are marked instead, and refreshed by the next flush
        (:mod:`spendstream.sinks.open_windows`)."""
        if not times:
            return
        # Per event once: every coarser window is a multiple of a minute, so it comes from the
        # (few) distinct minutes instead of from every event again.
        minutes = window_starts(times, "minute")
        touched = {
            (unit, start)
            for unit in self.units - {"minute"}
            for start in window_starts(minutes, unit)
        }
        touched |= {("minute", start) for start in minutes}
        deferral = self.deferral
        if deferral is None:
            self._refresh_windows(touched)
            return
        later = {window for window in touched if deferral.defers(window)}
        if later:
            open_windows.mark(self.client, later)
            # A minute marked while open stays due at its close; one first marked closed is late.
            deferral.late |= {
                w for w in later - deferral.pending if w[0] == "minute" and not deferral.is_open(w)
            }
            deferral.pending |= later
        due = deferral.due()
        if deferral.timer_due():  # and any writer's closed marks (a dead one's), even with
            # none of this writer's own pending (it may only write closed windows: lagging)
            looked = time.monotonic()
            marked = open_windows.marked(self.client, open_windows.MARK_TABLES)
            due |= {w for w in marked if not deferral.is_open(w)}
            if not due:
                deferral.flushed(set(), looked)  # nothing anywhere: restart the timer
        if due:
            self._flush(deferral, due, read_marks=False, also=touched - later)
        else:
            self._refresh_windows(touched - later)

    def settle(self) -> None:
        """Refresh every marked window, this writer's and any other's (the stream drained):
        afterwards every rollup equals the ledger. Nothing to do without a deferral."""
        if self.deferral is not None:
            self._flush(self.deferral, set(self.deferral.pending), read_marks=True)

    def _flush(
        self,
        deferral: Deferral,
        windows: set[open_windows.Window],
        read_marks: bool,
        also: set[open_windows.Window] | None = None,
    ) -> None:
        """Refresh ``windows`` (and every marked one with ``read_marks``) and record them done;
        ``also``: windows refreshed with them that were never marked (a batch's closed ones)."""
        started = time.monotonic()
        as_of = open_windows.server_now(self.client)
        if read_marks:
            windows = windows | open_windows.marked(self.client, open_windows.MARK_TABLES)
        # Each hour and day is built from the windows inside it: refreshed after them, here,
        # even when no mark says so. Another writer's flush may have recorded the hour done
        # while one of its minutes, marked by a writer since gone, was still open and unflushed;
        # nothing else would then refresh the hour once that minute is
        # (tests/test_open_windows_peers.py).
        refreshed = windows | (also or set())
        enclosing = self._enclosing(refreshed) - refreshed
        cells, held = (
            deferral.cells(refreshed | enclosing, read_marks)
            if open_windows.CELLS in self.units
            else (set(), set())
        )
        self._refresh_windows(refreshed | enclosing | cells)
        open_windows.hold(self.client, held)  # before their hour is recorded done
        flushed = windows | enclosing | cells
        open_windows.done(self.client, flushed, as_of)
        deferral.flushed(flushed, started)

    def _enclosing(self, windows: Iterable[open_windows.Window]) -> set[open_windows.Window]:
        """The windows of this writer's coarser units holding any of ``windows``."""
        return {
            open_windows.enclosing(window, coarser)
            for window in windows
            for coarser in open_windows.COARSER_UNITS[window[0]]
            if coarser in self.units
        }

    def _refresh_windows(self, windows: Iterable[open_windows.Window]) -> None:
        """Run the minute steps over the minute ``windows``, then every hour and day step over
        its unit's, in the steps' order: each reads the finer rollup the steps before wrote."""
        starts = open_windows.by_unit(windows)
        steps = self.steps
        if "minute" in starts and DRIVERS_MINUTE in steps:  # the drivers first, the rest from them
            first = DRIVERS_MINUTE
            if self.fanout and AGENT_MINUTE in steps:  # and the runs' minutes from the same read
                first = ("minute", MINUTE_FANOUT)
                steps = tuple(step for step in steps if step != AGENT_MINUTE)
            self._run(first[1], "minute", starts["minute"])
            self._run(MINUTE_FROM_DRIVERS, "minute", starts["minute"])
            steps = tuple(step for step in steps if step != DRIVERS_MINUTE)
        elif "minute" in starts:
            self._run(rollup_from_ledger_sql("minute"), "minute", starts["minute"])
        ordered = sorted(steps, key=lambda step: step[0] != "minute")  # stable
        for unit, sql in ordered:
            if unit in starts:
                self._run(sql, unit, starts[unit])

    def _run(self, sql: str, unit: str, starts: list[datetime]) -> None:
        self.client.command(
            sql,
            parameters={
                "starts": starts,
                "lo": starts[0],
                "hi": starts[-1] + timedelta(seconds=open_windows.UNIT_SECONDS[unit]),
            },
        )


def rebuild_rollups(
    client: Client,
    since: datetime,
    until: datetime,
    steps: Sequence[tuple[str, str]] = REFRESH_STEPS,
) -> int:
    """Recompute every rollup window of ``[since, until)`` from the ledger, one UTC day at a
    time (bulk loads, benchmarks, repairs); returns the number of days refreshed. The prompt
    sightings and their repeats are filled once at the end (a day touches most prompts: per
    day, they would be recomputed whole every day)."""
    once = {
        REFRESH_SIGHTINGS: BACKFILL_SIGHTINGS,
        REFRESH_REPEATS: BACKFILL_REPEATS,
        REFRESH_TEAM_REPEATS: BACKFILL_TEAM_REPEATS,
    }
    writer = LedgerWriter(client, 0, [step for step in steps if step[1] not in once])
    day = datetime(since.year, since.month, since.day, tzinfo=UTC)
    days = 0
    while day < until:
        writer.refresh_rollups([day + timedelta(minutes=m) for m in range(1440)])
        day += timedelta(days=1)
        days += 1
    for _unit, sql in steps:
        if sql in once:
            client.command(once[sql])
    return days


__all__ = [
    "Deferral",
    "KafkaOrigin",
    "LedgerEntry",
    "LedgerWriter",
    "rebuild_rollups",
]
