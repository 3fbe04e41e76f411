"""Spend sums over a period read from the smallest table that has the asked dimensions.

A period ``[since, until)`` is cut at whole hours and whole UTC days::

    since ≤ h0 ≤ d0 ≤ d1 ≤ h1 ≤ until
    ledger [since, h0) · hour rollup [h0, d0) · day rollup [d0, d1)
                       · hour rollup [d1, h1) · ledger [h1, until)

Whole days come from a day rollup, whole hours at the edges from an hour rollup, and only the
partial hours at the very edges from ``ledger FINAL``. The rollup is the lean one (no ``user``)
when the dimensions allow, ``rollup_hour_user``/``rollup_day_user`` (team, user) by user, and
the full ones otherwise; dimensions no rollup has
(``operation``, tags) read the ledger for the whole period. Rollups are recomputed from the
deduplicated ledger for every window a batch touches (``sinks.ledger``), so the sums are equal
to the last digit; a read racing a write may see a batch in the ledger a few milliseconds
before its rollups.

:func:`spend_source` returns a sub-query with one row per ``day`` and dimension combination and
the columns ``m_<measure>`` for each of :data:`~spendstream.sinks.migrations.MEASURES`
(``m_events``, ``m_cost_total``, …); it takes the ``DateTime64(3)`` parameters ``since``,
``until`` and ``h0``, ``d0``, ``d1``, ``h1`` (whole seconds) from :func:`window_parameters`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from spendstream.sinks.migrations import (
    LEAN_DIMENSIONS,
    LEAN_TABLES,
    MEASURE_FROM_LEDGER,
    MEASURES,
    ROLLUP_DIMENSIONS,
    ROLLUP_TABLES,
    USER_DIMENSIONS,
    USER_TABLES,
)

HOUR, DAY = 3600, 86400

# Measures come out as m_<name>: an outer `sum(requests) AS requests` would otherwise nest.
LEDGER_MEASURES = ", ".join(f"{sql} AS m_{name}" for name, sql in MEASURE_FROM_LEDGER.items())
ROLLUP_MEASURES = ", ".join(f"sum({name}) AS m_{name}" for name in MEASURES)
# Usage units (maps per unit name), the same from the ledger and from every rollup.
UNIT_MEASURES = (
    ", sum(cost_units) AS m_cost_units, sumMap(unit_quantities) AS m_unit_quantities, "
    "sumMap(unit_costs) AS m_unit_costs"
)


def _ceil(moment: datetime, size: int) -> int:
    return math.ceil(moment.timestamp() / size) * size


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


WINDOW_PARAMETERS = ("since", "until", "h0", "d0", "d1", "h1")
# The conditions on the ledger edges, the whole hours and the whole days (module doc).
WINDOW_CONDITIONS = (
    "((event_time >= {since:DateTime64(3)} AND event_time < {h0:DateTime64(3)}) "
    "OR (event_time >= {h1:DateTime64(3)} AND event_time < {until:DateTime64(3)}))",
    "((window_start >= {h0:DateTime64(3)} AND window_start < {d0:DateTime64(3)}) "
    "OR (window_start >= {d1:DateTime64(3)} AND window_start < {h1:DateTime64(3)}))",
    "window_start >= {d0:DateTime64(3)} AND window_start < {d1:DateTime64(3)}",
)


def with_prefix(sql: str, prefix: str) -> str:
    """``sql`` (from :func:`spend_source`) reading its window parameters as ``<prefix><name>``,
    so that two periods can be read in one query."""
    for name in WINDOW_PARAMETERS:
        sql = sql.replace(f"{{{name}:", f"{{{prefix}{name}:")
    return sql


def window_parameters(since: datetime, until: datetime, prefix: str = "") -> dict[str, Any]:
    """``since``, ``until`` and the cut points ``h0 ≤ d0 ≤ d1 ≤ h1`` (see the module doc),
    named ``<prefix><name>`` (see :func:`with_prefix`)."""
    lo, hi = math.floor(since.timestamp()), math.floor(until.timestamp())
    h0, h1 = _ceil(since, HOUR), hi // HOUR * HOUR
    if h0 >= h1:  # no whole hour: all from the ledger
        h0 = h1 = d0 = d1 = max(lo, min(h0, hi))
    else:
        d0, d1 = _ceil(since, DAY), hi // DAY * DAY
        if d0 >= d1:  # no whole day: whole hours only
            d0 = d1 = h1
    values = (since, until, _at(h0), _at(d0), _at(d1), _at(h1))
    return {f"{prefix}{name}": value for name, value in zip(WINDOW_PARAMETERS, values, strict=True)}


def has_whole_days(since: datetime, until: datetime) -> bool:
    """Whether ``[since, until)`` holds a whole UTC day (else the day rollups' branch of
    :func:`spend_source` and :func:`spend_rows` reads nothing, and ``whole_days=False`` leaves
    it out: ~10 ms a period of planning ``FINAL`` over the day rollup's parts at 10 M events)."""
    cut = window_parameters(since, until)
    return bool(cut["d0"] < cut["d1"])


def rollup_tables(dims: Sequence[str]) -> tuple[str, str] | None:
    """(hour table, day table) holding every one of ``dims``, smallest first; None when no
    rollup does."""
    if set(dims) <= set(LEAN_DIMENSIONS):
        return LEAN_TABLES["hour"], LEAN_TABLES["day"]
    if set(dims) <= set(USER_DIMENSIONS):
        return USER_TABLES["hour"], USER_TABLES["day"]
    if set(dims) <= set(ROLLUP_DIMENSIONS):
        return ROLLUP_TABLES["hour"], ROLLUP_TABLES["day"]
    return None


# Buckets a rollup's rows fall into whole: a day row lies in one UTC day (week, month, …), an
# hour row in one hour. Any other bucket (a minute, five minutes) reads the ledger only, and an
# hour bucket never reads the day rollup, which cannot say which hour of its day an event was in.
DAY_BUCKETS = frozenset(
    {"toDate", "toStartOfDay", "toMonday", "toStartOfWeek", "toStartOfMonth", "toStartOfQuarter"}
    | {"toStartOfYear"}
)
HOUR_BUCKETS = DAY_BUCKETS | {"toStartOfHour"}
# The hour rollup over every whole hour [h0, h1), for buckets finer than a day.
ALL_HOURS_CONDITION = "window_start >= {h0:DateTime64(3)} AND window_start < {h1:DateTime64(3)}"


def spend_source(
    dims: Sequence[str],
    where: str = "1",
    bucket: str = "toDate",
    where_dims: Sequence[str] = ("team",),
    units: bool = False,
    tables: tuple[str, str] | None = None,
    measures: Sequence[str] | None = None,
    computed: dict[str, str] | None = None,
    whole_days: bool = True,
) -> str:
    """A sub-query: ``day`` (``bucket`` of the time: ``toDate``, ``toStartOfHour``, …; a bucket
    finer than a day reads no day rollup, one finer than an hour only the ledger:
    :data:`HOUR_BUCKETS`), ``dims`` and the measures over ``[since, until)`` (module doc), keeping
    rows that satisfy ``where``, a condition on ``where_dims`` (e.g. team scoping, filters):
    the rollup read is the smallest holding ``dims`` and ``where_dims``. ``units`` adds
    ``m_cost_units``, ``m_unit_quantities`` and ``m_unit_costs`` (maps by unit name);
    ``tables`` names the (hour, day) rollups to read instead (Explain's drivers rollups);
    ``measures`` keeps only those of :data:`MEASURES` (default: all); ``computed`` reads a
    dimension of ``dims`` (a new name) as an expression over the stored columns;
    ``whole_days`` False leaves out the day rollup (:func:`has_whole_days`)."""
    ledger_measures, rollup_measures = LEDGER_MEASURES, ROLLUP_MEASURES
    if measures is not None:
        ledger_measures = ", ".join(f"{MEASURE_FROM_LEDGER[n]} AS m_{n}" for n in measures)
        rollup_measures = ", ".join(f"sum({n}) AS m_{n}" for n in measures)
    ledger_measures += UNIT_MEASURES if units else ""
    rollup_measures += UNIT_MEASURES if units else ""
    group = ", ".join(("day", *dims))
    computed = computed or {}
    columns = ", ".join(f"{computed[d]} AS {d}" if d in computed else d for d in dims)
    select = f"{bucket}(event_time) AS day" + (f", {columns}" if dims else "")
    tables = tables or rollup_tables([*dims, *where_dims])
    if tables is None or bucket not in HOUR_BUCKETS:
        return (
            f"SELECT {select}, {ledger_measures} FROM ledger FINAL "
            "WHERE event_time >= {since:DateTime64(3)} AND event_time < {until:DateTime64(3)} "
            f"AND ({where}) GROUP BY {group}"
        )
    hour, day = tables
    rollup_select = f"{bucket}(window_start) AS day" + (f", {columns}" if dims else "")
    ledger_where, hour_where, day_where = WINDOW_CONDITIONS
    if bucket not in DAY_BUCKETS:  # the whole days from the hour rollup too
        hour_where, whole_days = ALL_HOURS_CONDITION, False
    branches = (
        f"SELECT {select}, {ledger_measures} FROM ledger FINAL WHERE {ledger_where} "
        f"AND ({where}) GROUP BY {group}",
        f"SELECT {rollup_select}, {rollup_measures} FROM {hour} FINAL WHERE {hour_where} "
        f"AND ({where}) GROUP BY {group}",
        f"SELECT {rollup_select}, {rollup_measures} FROM {day} FINAL WHERE {day_where} "
        f"AND ({where}) GROUP BY {group}",
    )
    return " UNION ALL ".join(branches if whole_days else branches[:2])


def spend_rows(
    columns: str,
    where: str = "1",
    where_dims: Sequence[str] = ("team",),
    tables: tuple[str, str] | None = None,
    whole_days: bool = True,
) -> str:
    """A sub-query: ``columns`` (expressions over columns the ledger and the rollups share:
    dimensions, ``cost_total``) of every row over ``[since, until)`` that satisfies ``where``,
    not grouped: the ledger edges' events and the rollups' rows as they are stored, for one
    aggregation above (cheaper than grouping each part first). Tables, parameters and
    ``whole_days`` as for :func:`spend_source`."""
    tables = tables or rollup_tables(where_dims)
    if tables is None:
        return (
            f"SELECT {columns} FROM ledger FINAL WHERE event_time >= {{since:DateTime64(3)}} "
            f"AND event_time < {{until:DateTime64(3)}} AND ({where})"
        )
    sources = ("ledger", *tables) if whole_days else ("ledger", tables[0])
    return " UNION ALL ".join(
        f"SELECT {columns} FROM {table} FINAL WHERE {condition} AND ({where})"
        for table, condition in zip(sources, WINDOW_CONDITIONS[: len(sources)], strict=True)
    )
