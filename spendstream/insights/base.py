"""What every insight shares: the period and scope it reads, its result, exact number helpers.

Insights read ``ledger FINAL`` (the newest rating of every event) through a
:class:`~spendstream.sinks.access.Reader`, over the half-open period ``[since, until)`` of
``event_time``, restricted by ``--scope key=value`` filters and the caller's teams; spend sums
by rollup dimensions come from the rollups instead (:meth:`Context.rollup_rows`, equal to the
ledger to the last digit) unless the scope names a key no rollup has. Values may
arrive JSON-encoded (a worker's ``/sql``), so numbers are read back with :func:`dec`/:func:`num`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

from spendstream.config import InsightsSettings
from spendstream.errors import InputError
from spendstream.events import TAG_KEY_PATTERN
from spendstream.pricing import Pricer
from spendstream.sinks.access import Reader
from spendstream.sinks.migrations import ROLLUP_DIMENSIONS
from spendstream.sinks.windows import spend_source, window_parameters

# Scope keys that are ledger columns; any other key filters on the tag of that name.
COLUMNS = ("team", "app", "env", "feature", "user", "provider", "model", "operation")
PERCENT = Decimal("0.01")
ATTO = Decimal("1e-18")
ESTIMATE = "price estimates from the catalog's list prices, never a statement about quality"


class InsightError(InputError, ValueError):
    """A request an insight cannot answer; the message says what to change."""


@dataclass(frozen=True)
class Window:
    """Which ledger rows an insight reads: period, scope filters and a team condition."""

    since: datetime
    until: datetime
    scope: tuple[tuple[str, str], ...] = ()
    team_sql: str = "1"
    team_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.until <= self.since:
            raise InsightError(f"until ({self.until:%Y-%m-%d %H:%M}) must be after since")
        for key, _ in self.scope:
            if not TAG_KEY_PATTERN.match(key):
                raise InsightError(f"scope key {key!r} is not a tag name (e.g. team=search)")

    def where(self, columns: Sequence[str] = COLUMNS) -> tuple[str, dict[str, Any]]:
        """SQL for a WHERE clause and its parameters; scope keys in ``columns`` filter that
        column, others the tag of that name."""
        parts = ["event_time >= {since:DateTime64(3)} AND event_time < {until:DateTime64(3)}"]
        params: dict[str, Any] = {"since": self.since, "until": self.until, **self.team_params}
        for index, (key, value) in enumerate(self.scope):
            column = key if key in columns else f"tags[{{scope_key_{index}:String}}]"
            parts.append(f"{column} = {{scope_{index}:String}}")
            params[f"scope_key_{index}"] = key
            params[f"scope_{index}"] = value
        parts.append(self.team_sql)
        return " AND ".join(f"({part})" for part in parts), params

    def rollup_where(self) -> tuple[str, tuple[str, ...], dict[str, Any]] | None:
        """The scope and team condition without the period (``sinks.windows.spend_source``
        applies it), the columns it names, and its parameters; None when a scope key is not a
        rollup dimension (the read must go to the ledger)."""
        keys = tuple(key for key, _ in self.scope)
        if not set(keys) <= set(ROLLUP_DIMENSIONS):
            return None
        parts = [f"{key} = {{scope_{index}:String}}" for index, key in enumerate(keys)]
        params: dict[str, Any] = {f"scope_{i}": value for i, (_, value) in enumerate(self.scope)}
        parts.append(self.team_sql)  # on the team column, which every rollup keeps
        where = " AND ".join(f"({part})" for part in parts)
        return where, ("team", *keys), {**params, **self.team_params}


def parse_scope(items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``["team=search", "env=prod"]`` as pairs; InsightError for an item without ``=``."""
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InsightError(f"scope {item!r}: write key=value, e.g. team=search")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


@dataclass(frozen=True)
class Context:
    """What an insight runs with: the reader, the pricer (list prices) and ``[insights]``."""

    reader: Reader
    pricer: Pricer
    settings: InsightsSettings
    window: Window
    # True: every figure from `ledger FINAL`, never the insight cells (benchmarks' "before").
    from_ledger: bool = False

    def rows(
        self, sql: str, extra: dict[str, Any] | None = None, columns: Sequence[str] = COLUMNS
    ) -> list[dict[str, Any]]:
        """Run ``sql`` (containing ``{where}``) over the window; rows as dicts."""
        where, params = self.window.where(columns)
        sql = sql.replace("{where}", where)
        return self.reader.query(sql, {**params, **(extra or {})}).records()

    def rollup_rows(self, dims: Sequence[str], select: str) -> list[dict[str, Any]] | None:
        """``day``, ``dims`` and ``select`` (over the measures ``m_cost_total``, ``m_events``,
        …) per UTC day and ``dims`` over the window, read from the rollups and the ledger's
        partial-hour edges (``sinks.windows``: equal to the ledger to the last digit); None
        when the scope names a key no rollup has."""
        found = self.window.rollup_where()
        if found is None:
            return None
        where, where_dims, params = found
        group = ", ".join(("day", *dims))
        source = spend_source(dims, where, where_dims=where_dims)
        sql = f"SELECT {group}, {select} FROM ({source}) GROUP BY {group}"
        window = window_parameters(self.window.since, self.window.until)
        return self.reader.query(sql, {**window, **params}).records()


@dataclass
class InsightResult:
    """An insight's answer: a table, and a note saying what its figures are (and are not)."""

    name: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""


def dec(value: Any) -> Decimal:
    """An exact Decimal from a ClickHouse value or its JSON text (None is 0)."""
    return Decimal(0) if value is None else Decimal(str(value))


def money(value: Decimal) -> Decimal:
    """``value`` shown with at least the ledger's 18 decimals (never rounded): 0E-18 reads as
    0.000000000000000000 in tables and CSV."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -18:
        return value.quantize(ATTO)
    return value


def num(value: Any) -> int:
    return 0 if value is None else int(value)


def pct(part: Decimal | int, whole: Decimal | int) -> Decimal | None:
    """``part / whole`` in percent, rounded half-even to 0.01; None when ``whole`` is 0."""
    if not whole:
        return None
    with localcontext() as context:
        context.prec = 80
        return (Decimal(part) * 100 / Decimal(whole)).quantize(PERCENT, ROUND_HALF_EVEN)
