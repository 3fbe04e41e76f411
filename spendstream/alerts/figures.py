"""Budget figures computed from the deduplicated ledger (``ledger FINAL``), never from stream state.

Each budget needs four sums over its scope: period spend, the burn-rate window for the forecast
and the two spike windows. Whole hours inside a window are read from ``rollup_hour FINAL``
(recomputed from the ledger, so just as exact) when the scope only uses rollup dimensions; the
partial hours at the window's edges, and scopes on other tags, read ``ledger FINAL``. A month
budget therefore costs one hour of ledger, not a month. Two queries per evaluation cover every
budget. Works with any :class:`spendstream.sinks.access.Reader`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from spendstream.alerts.config import AlertsConfig, BudgetConfig
from spendstream.alerts.periods import period_bounds
from spendstream.alerts.scope import COLUMN_KEYS, scope_sql
from spendstream.sinks.access import Reader

CONTRIBUTOR_DIMENSIONS = ("app", "user", "model")
# A burn rate measured over less than this is noise; no forecast until then.
MIN_FORECAST_WINDOW = timedelta(minutes=5)
CENT = Decimal("0.01")
HOUR = 3600


def time_sql(moment: datetime) -> str:
    """A UTC DateTime64(3) literal."""
    text = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:23]
    return f"toDateTime64('{text}', 3, 'UTC')"


def to_decimal(value: Any) -> Decimal:
    """A ClickHouse Decimal, whether native or JSON-encoded by the worker's /sql."""
    return Decimal(str(value)) if value is not None else Decimal(0)


def seconds(delta: timedelta) -> Decimal:
    return Decimal(round(delta.total_seconds() * 1000)) / 1000


@dataclass(frozen=True)
class Windows:
    """The instants one budget's figures are computed over."""

    now: datetime
    period_start: datetime
    period_end: datetime
    burn_start: datetime
    spike_start: datetime
    baseline_start: datetime

    @classmethod
    def of(cls, budget: BudgetConfig, alerts: AlertsConfig, now: datetime) -> Windows:
        start, end = period_bounds(budget.period, budget.timezone, now)
        spike = budget.spike_rule(alerts.spike) or alerts.spike
        return cls(
            now=now,
            period_start=start,
            period_end=end,
            burn_start=max(start, now - alerts.forecast_window),
            spike_start=now - spike.window,
            baseline_start=now - spike.window - spike.baseline,
        )


@dataclass(frozen=True)
class PromptGrowth:
    """Exact p50 input tokens per event (``quantileExact``) of the last 7 days and the 7 before."""

    p50: int
    events: int
    previous_p50: int
    previous_events: int

    def growth_pct(self, min_events: int) -> Decimal | None:
        """Percent change of the p50, or None with too few events or a zero baseline."""
        if min(self.events, self.previous_events) < min_events or self.previous_p50 <= 0:
            return None
        return (Decimal(self.p50 - self.previous_p50) * 100 / self.previous_p50).quantize(CENT)


@dataclass(frozen=True)
class BudgetFigures:
    """Spend of one budget at ``windows.now``, with its forecast and spike windows (and prompt
    length figures for budgets with a ``prompt_growth`` rule)."""

    budget: BudgetConfig
    windows: Windows
    spend: Decimal
    burn_spend: Decimal
    recent_spend: Decimal
    baseline_spend: Decimal
    prompts: PromptGrowth | None = None

    @property
    def percent(self) -> Decimal:
        return (self.spend * 100 / self.budget.limit).quantize(CENT)

    @property
    def forecast(self) -> Decimal | None:
        """Projected end-of-period spend at the recent burn rate (None: too early to tell)."""
        elapsed = self.windows.now - self.windows.burn_start
        if elapsed < MIN_FORECAST_WINDOW:
            return None
        rate = self.burn_spend / seconds(elapsed)
        remaining = max(self.windows.period_end - self.windows.now, timedelta(0))
        return (self.spend + rate * seconds(remaining)).quantize(CENT)

    @property
    def overrun_at(self) -> datetime | None:
        """When spend reaches the limit at the recent burn rate, if within this period."""
        if self.spend >= self.budget.limit or self.burn_spend <= 0:
            return None
        elapsed = seconds(self.windows.now - self.windows.burn_start)
        if elapsed <= 0:
            return None
        rate = self.burn_spend / elapsed
        moment = self.windows.now + timedelta(
            seconds=float((self.budget.limit - self.spend) / rate)
        )
        return moment if moment < self.windows.period_end else None


Range = tuple[datetime, datetime]


def _between(scope: str, start: datetime, end: datetime, column: str = "event_time") -> str:
    return f"{scope} AND {column} >= {time_sql(start)} AND {column} < {time_sql(end)}"


def split_hours(start: datetime, end: datetime) -> tuple[list[Range], Range | None]:
    """``[start, end)`` as its partial-hour edges and the whole hours between them (if any)."""
    first = datetime.fromtimestamp(-(-int(start.timestamp()) // HOUR) * HOUR, UTC)
    last = datetime.fromtimestamp(int(end.timestamp()) // HOUR * HOUR, UTC)
    if first >= last:
        return [(start, end)], None
    edges = [(a, b) for a, b in ((start, first), (last, end)) if a < b]
    return edges, (first, last)


def figures_sql(budgets: Sequence[BudgetConfig], windows: Sequence[Windows]) -> tuple[str, str]:
    """Two SELECTs (ledger edges, hourly rollup) with four sums per budget; the figures are the
    column-wise sums of their rows."""
    ledger_columns, rollup_columns = [], []
    for budget, w in zip(budgets, windows, strict=True):
        scope = f"({scope_sql(budget.scope_filters)})"
        use_rollup = set(budget.scope_filters) <= set(COLUMN_KEYS)
        for start, end in (
            (w.period_start, w.period_end),
            (w.burn_start, w.now),
            (w.spike_start, w.now),
            (w.baseline_start, w.spike_start),
        ):
            edges, hours = split_hours(start, end) if use_rollup else ([(start, end)], None)
            parts = [f"sumIf(cost_total, {_between(scope, a, b)})" for a, b in edges]
            ledger_columns.append(" + ".join(parts) if parts else "toDecimal128(0, 18)")
            rollup_columns.append(
                f"sumIf(cost_total, {_between(scope, *hours, column='window_start')})"
                if hours
                else "toDecimal128(0, 18)"
            )
    low = min(min(w.period_start, w.baseline_start) for w in windows)
    high = max(max(w.period_end, w.now) for w in windows)
    ledger = (
        f"SELECT {', '.join(ledger_columns)} FROM ledger FINAL "
        f"WHERE event_time >= {time_sql(low)} AND event_time < {time_sql(high)}"
    )
    rollup = (
        f"SELECT {', '.join(rollup_columns)} FROM rollup_hour FINAL "
        f"WHERE window_start >= {time_sql(low)} AND window_start < {time_sql(high)}"
    )
    return ledger, rollup


def compute_figures(
    reader: Reader, budgets: Sequence[BudgetConfig], alerts: AlertsConfig, now: datetime
) -> list[BudgetFigures]:
    """Figures for ``budgets`` at ``now`` (one ledger and one rollup query)."""
    if not budgets:
        return []
    windows = [Windows.of(budget, alerts, now) for budget in budgets]
    ledger_sql, rollup_sql = figures_sql(budgets, windows)
    sums = [
        to_decimal(edge) + to_decimal(hours)
        for edge, hours in zip(
            reader.query(ledger_sql).rows[0], reader.query(rollup_sql).rows[0], strict=True
        )
    ]
    return [
        BudgetFigures(budget, w, sums[4 * i], sums[4 * i + 1], sums[4 * i + 2], sums[4 * i + 3])
        for i, (budget, w) in enumerate(zip(budgets, windows, strict=True))
    ]


def prompt_growth(reader: Reader, budget: BudgetConfig, now: datetime) -> PromptGrowth:
    """p50 input tokens per event in the budget's scope, last 7 days vs the 7 days before."""
    week = timedelta(days=7)
    scope = f"({scope_sql(budget.scope_filters)})"
    recent = _between(scope, now - week, now)
    before = _between(scope, now - 2 * week, now - week)
    row = reader.query(
        f"SELECT quantileExactIf(0.5)(input_tokens, {recent}), countIf({recent}), "
        f"quantileExactIf(0.5)(input_tokens, {before}), countIf({before}) FROM ledger FINAL "
        f"WHERE event_time >= {time_sql(now - 2 * week)} AND event_time < {time_sql(now)} "
        "AND operation != 'embeddings'"
    ).rows[0]
    return PromptGrowth(*(int(value or 0) for value in row))


def drilldown_sql(figures: BudgetFigures) -> str:
    """The SQL a human runs (``spendstream sql``) to see what drives this budget's spend."""
    w = figures.windows
    where = _between(scope_sql(figures.budget.scope_filters), w.period_start, w.period_end)
    return (
        "SELECT app, user, model, sum(cost_total) AS spend, count() AS events "
        f"FROM ledger FINAL WHERE {where} GROUP BY app, user, model ORDER BY spend DESC LIMIT 20"
    )


def top_contributors(
    reader: Reader, figures: BudgetFigures, limit: int
) -> dict[str, list[tuple[str, Decimal]]]:
    """The ``limit`` biggest apps, users and models inside the budget's scope and period."""
    if limit <= 0:
        return {}
    w = figures.windows
    where = _between(scope_sql(figures.budget.scope_filters), w.period_start, w.period_end)
    parts = [
        f"SELECT * FROM (SELECT '{dim}' AS dim, toString({dim}) AS value, "
        f"sum(cost_total) AS spend FROM ledger FINAL WHERE {where} "
        f"GROUP BY value ORDER BY spend DESC, value LIMIT {int(limit)})"
        for dim in CONTRIBUTOR_DIMENSIONS
    ]
    rows = reader.query(" UNION ALL ".join(parts)).rows
    found: dict[str, list[tuple[str, Decimal]]] = {dim: [] for dim in CONTRIBUTOR_DIMENSIONS}
    for dim, value, spend in rows:
        found[str(dim)].append((str(value), to_decimal(spend)))
    for dim in found:
        found[dim].sort(key=lambda item: (-item[1], item[0]))
    return found
