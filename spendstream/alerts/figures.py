"""Budget figures computed from the deduplicated ledger (``ledger FINAL``), never from stream state.

Each budget needs four sums over its scope: period spend, the burn-rate window for the forecast
and the two spike windows. Whole hours inside a window are read from the smallest hourly rollup
holding the scope's keys (``rollup_hour_lean``, ``rollup_hour_user``, ``rollup_hour``; all
recomputed from the ledger, so just as exact) when the scope only uses rollup dimensions; the
partial hours at the window's edges, and scopes on other tags, read ``ledger FINAL``. A month
budget therefore costs one hour of ledger, not a month. One ledger query plus one per hourly
rollup in use cover every budget. Works with any :class:`spendstream.sinks.access.Reader`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from spendstream.alerts.config import AlertsConfig, BudgetConfig
from spendstream.currency import Converted
from spendstream.money import CENT, to_decimal
from spendstream.periods import period_bounds
from spendstream.sinks.access import Reader
from spendstream.sinks.audits import render_sql
from spendstream.sinks.params import Params, moment
from spendstream.sinks.scopes import scope_sql
from spendstream.sinks.windows import rollup_tables

Range = tuple[datetime, datetime]

CONTRIBUTOR_DIMENSIONS = ("app", "user", "model")
HOUR = 3600


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
    # Forecast evidence: spend seen in the burn window for at least ``min_span``, still burning
    # since ``late_start`` (the last half ``min_span``).
    min_span: timedelta
    late_start: datetime

    @classmethod
    def of(cls, budget: BudgetConfig, alerts: AlertsConfig, now: datetime) -> Windows:
        start, end = period_bounds(budget.period, budget.timezone, now, budget.fiscal_year_start)
        spike = budget.spike_rule(alerts.spike) or alerts.spike
        window = budget.burn_window(alerts)
        burn_start = max(start, now - window)
        min_span = min(budget.forecast_evidence(alerts)[0], window)
        return cls(
            now=now,
            period_start=start,
            period_end=end,
            burn_start=burn_start,
            spike_start=now - spike.window,
            baseline_start=now - spike.window - spike.baseline,
            min_span=min_span,
            late_start=max(burn_start, now - min_span / 2),
        )

    def ranges(self) -> tuple[Range, ...]:
        """The sums each budget needs, in :class:`BudgetFigures` field order."""
        return (
            (self.period_start, self.period_end),
            (self.burn_start, self.now),
            (self.spike_start, self.now),
            (self.baseline_start, self.spike_start),
            (self.late_start, self.now),
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
    late_spend: Decimal = Decimal(0)  # spend since windows.late_start
    first_seen: datetime | None = None  # first event of the burn window (None: no event)
    min_forecast_spend: Decimal = Decimal(0)
    prompts: PromptGrowth | None = None
    # An ended period evaluated again for late events (``windows.now`` is its last instant).
    ended: bool = False
    # Set by spendstream.alerts.adjust: the previous period's rollover, and how the spend was
    # converted into the budget's currency (None: a USD budget).
    carried: Decimal = Decimal(0)
    converted: Converted | None = None

    @property
    def limit(self) -> Decimal:
        """This period's limit: the configured one plus any rollover (in the budget's currency)."""
        return self.budget.limit + self.carried

    @property
    def percent(self) -> Decimal:
        return (self.spend * 100 / self.limit).quantize(CENT)

    @property
    def burn_rate(self) -> Decimal | None:
        """USD per second the forecast extrapolates, or None without enough evidence.

        Evidence: spend was first seen in the burn window at least ``min_span`` ago (so a few
        seconds of traffic never forecast a month), and the period's spend reaches
        ``min_forecast_spend``. The rate is measured from that first event (not diluted by an
        idle start of the window), and is the lower of that rate and the rate since
        ``late_start``, so a burst that has stopped is not extrapolated.
        """
        w = self.windows
        if self.first_seen is None or w.now - self.first_seen < w.min_span:
            return None
        if self.spend < self.min_forecast_spend or self.burn_spend <= 0:
            return None
        observed = seconds(w.now - max(w.burn_start, self.first_seen))
        late = seconds(w.now - w.late_start)
        if observed <= 0 or late <= 0:
            return None
        return min(self.burn_spend / observed, self.late_spend / late)

    @property
    def forecast(self) -> Decimal | None:
        """Projected end-of-period spend at :attr:`burn_rate` (None: not enough evidence)."""
        rate = self.burn_rate
        if rate is None:
            return None
        remaining = max(self.windows.period_end - self.windows.now, timedelta(0))
        return (self.spend + rate * seconds(remaining)).quantize(CENT)

    @property
    def overrun_at(self) -> datetime | None:
        """When spend reaches the limit at :attr:`burn_rate`, if within this period."""
        rate = self.burn_rate
        if self.spend >= self.limit or not rate:
            return None
        moment = self.windows.now + timedelta(seconds=float((self.limit - self.spend) / rate))
        return moment if moment < self.windows.period_end else None


def _range(start: datetime, end: datetime, params: Params, column: str = "event_time") -> str:
    return f"{column} >= {moment(params, start)} AND {column} < {moment(params, end)}"


def _between(
    scope: str, start: datetime, end: datetime, params: Params, column: str = "event_time"
) -> str:
    return f"{scope} AND {_range(start, end, params, column)}"


def split_hours(start: datetime, end: datetime) -> tuple[list[Range], Range | None]:
    """``[start, end)`` as its partial-hour edges and the whole hours between them (if any)."""
    first = datetime.fromtimestamp(-(-int(start.timestamp()) // HOUR) * HOUR, UTC)
    last = datetime.fromtimestamp(int(end.timestamp()) // HOUR * HOUR, UTC)
    if first >= last:
        return [(start, end)], None
    edges = [(a, b) for a, b in ((start, first), (last, end)) if a < b]
    return edges, (first, last)


def split_settled(
    start: datetime, end: datetime, now: datetime
) -> tuple[list[Range], Range | None]:
    """:func:`split_hours`, with the hour holding ``now`` and any later one read from the
    ledger: the worker refreshes the open hour's rollups only when the stream drains
    (``sinks.open_windows``), after the batch observers woke the evaluation, which would
    otherwise read them stale until its next full pass."""
    open_hour = datetime.fromtimestamp(int(now.timestamp()) // HOUR * HOUR, UTC)
    if end <= open_hour:
        return split_hours(start, end)
    if start >= open_hour:
        return [(start, end)], None
    edges, hours = split_hours(start, open_hour)
    return [*edges, (open_hour, end)], hours


def figures_sql(
    budgets: Sequence[BudgetConfig], windows: Sequence[Windows]
) -> tuple[tuple[str, Params], list[tuple[str, Params]]]:
    """One ledger SELECT (the partial-hour edges, and each burn window for its first event) and
    one SELECT per hourly rollup in use, with one sum per budget and window (see
    :meth:`Windows.ranges`), each with its bound parameters; the figures are the column-wise
    sums of their rows. The ledger SELECT ends with each budget's first event time in its burn
    window (epoch milliseconds; 0 when there is none).

    Each budget reads the smallest hourly rollup holding its scope's keys (``rollup_hour_lean``
    without user, ``rollup_hour_user`` for team/user, else ``rollup_hour``)."""
    ledger_columns: list[str] = []
    read: list[Range] = []
    rollup_columns: dict[str, list[str]] = {}
    rollup_hours: dict[str, list[Range]] = {}  # the whole-hour ranges each rollup must cover
    ledger_params: Params = {}
    rollup_params: dict[str, Params] = {}
    zero = "toDecimal128(0, 18)"
    width = len(windows[0].ranges()) * len(budgets)
    for budget, w in zip(budgets, windows, strict=True):
        scope = f"({scope_sql(budget.scope_filters, ledger_params)})"
        keys = list(budget.scope_filters)
        tables = rollup_tables(keys)  # None when a key is a tag no rollup keeps
        for start, end in w.ranges():
            if start >= end:  # an empty window (e.g. no evidence time yet in this period)
                ledger_columns.append(zero)
                continue
            edges, hours = split_settled(start, end, w.now) if tables else ([(start, end)], None)
            read.extend(edges)
            spend = budget.spend_sql(ledger_params)
            parts = [f"sumIf({spend}, {_between(scope, a, b, ledger_params)})" for a, b in edges]
            ledger_columns.append(" + ".join(parts) if parts else zero)
            if tables and hours:
                columns = rollup_columns.setdefault(tables[0], [zero] * width)
                params = rollup_params.setdefault(tables[0], {})
                rollup_scope = f"({scope_sql(budget.scope_filters, params)})"
                where = _between(rollup_scope, *hours, params, column="window_start")
                rollup_spend = budget.spend_sql(params)
                columns[len(ledger_columns) - 1] = f"sumIf({rollup_spend}, {where})"
                rollup_hours.setdefault(tables[0], []).append(hours)
    for budget, w in zip(budgets, windows, strict=True):  # then one first-seen per budget
        read.append((w.burn_start, w.now))
        scope = f"({scope_sql(budget.scope_filters, ledger_params)})"
        burn = _between(scope, w.burn_start, w.now, ledger_params)
        ledger_columns.append(f"toUnixTimestamp64Milli(minIf(event_time, {burn}))")
    # Read only the edges and the burn windows (a month budget never scans a month of ledger).
    ranges = " OR ".join(f"({_range(a, b, ledger_params)})" for a, b in read)
    ledger = f"SELECT {', '.join(ledger_columns)} FROM ledger FINAL WHERE {ranges or 'false'}"
    # Each rollup read spans only its own budgets' hours (a week budget on the per-user table
    # does not scan the month a month budget reads from the lean one).
    rollups = []
    for table, columns in sorted(rollup_columns.items()):
        params = rollup_params[table]
        first = moment(params, min(a for a, _ in rollup_hours[table]))
        last = moment(params, max(b for _, b in rollup_hours[table]))
        rollups.append(
            (
                f"SELECT {', '.join(columns)} FROM {table} FINAL "
                f"WHERE window_start >= {first} AND window_start < {last}",
                params,
            )
        )
    return (ledger, ledger_params), rollups


def compute_figures(
    reader: Reader,
    budgets: Sequence[BudgetConfig],
    alerts: AlertsConfig,
    now: datetime,
    instants: Sequence[datetime] | None = None,
) -> list[BudgetFigures]:
    """Figures for ``budgets`` at ``now``, or each at its own instant of ``instants`` (one
    ledger query and one per hourly rollup used)."""
    if not budgets:
        return []
    at = [now] * len(budgets) if instants is None else instants
    windows = [Windows.of(b, alerts, t) for b, t in zip(budgets, at, strict=True)]
    (ledger_sql, ledger_params), rollup_sqls = figures_sql(budgets, windows)
    ledger_row = reader.query(ledger_sql, ledger_params).rows[0]
    size = len(windows[0].ranges())
    sums = [to_decimal(value) for value in ledger_row[: size * len(budgets)]]
    firsts = [int(str(ms)) for ms in ledger_row[size * len(budgets) :]]
    for sql, params in rollup_sqls:
        sums = [
            total + to_decimal(value)
            for total, value in zip(sums, reader.query(sql, params).rows[0], strict=True)
        ]
    figures = []
    for i, (budget, w) in enumerate(zip(budgets, windows, strict=True)):
        spend, burn, recent, baseline, late = sums[size * i : size * (i + 1)]
        first = datetime.fromtimestamp(firsts[i] / 1000, UTC) if firsts[i] > 0 else None
        figures.append(
            BudgetFigures(
                budget,
                w,
                spend,
                burn,
                recent,
                baseline,
                late_spend=late,
                first_seen=first,
                min_forecast_spend=budget.limit * budget.forecast_evidence(alerts)[1] / 100,
            )
        )
    return figures


def prompt_growth(reader: Reader, budget: BudgetConfig, now: datetime) -> PromptGrowth:
    """p50 input tokens per event in the budget's scope, last 7 days vs the 7 days before."""
    week = timedelta(days=7)
    params: Params = {}
    scope = f"({scope_sql(budget.scope_filters, params)})"
    recent = _between(scope, now - week, now, params)
    before = _between(scope, now - 2 * week, now - week, params)
    read = _between("operation != 'embeddings'", now - 2 * week, now, params)
    row = reader.query(
        f"SELECT quantileExactIf(0.5)(input_tokens, {recent}), countIf({recent}), "
        f"quantileExactIf(0.5)(input_tokens, {before}), countIf({before}) FROM ledger FINAL "
        f"WHERE {read}",
        params,
    ).rows[0]
    return PromptGrowth(*(int(value or 0) for value in row))


def _in_period(figures: BudgetFigures, params: Params) -> str:
    w = figures.windows
    scope = scope_sql(figures.budget.scope_filters, params)
    return _between(scope, w.period_start, w.period_end, params)


def drilldown_sql(figures: BudgetFigures) -> str:
    """The SQL a human runs (``spendstream sql``) to see what drives this budget's spend:
    text to read or paste, with its values written as literals (``sinks.audits.render_sql``)."""
    params: Params = {}
    where = _in_period(figures, params)
    return render_sql(
        f"SELECT app, user, model, sum({figures.budget.spend_sql(params)}) AS spend, "
        "count() AS events "
        f"FROM ledger FINAL WHERE {where} GROUP BY app, user, model ORDER BY spend DESC LIMIT 20",
        params,
    )


def top_contributors(
    reader: Reader, figures: BudgetFigures, limit: int
) -> dict[str, list[tuple[str, Decimal]]]:
    """The ``limit`` biggest apps, users and models inside the budget's scope and period."""
    if limit <= 0:
        return {}
    params: Params = {}
    where = _in_period(figures, params)
    parts = [
        f"SELECT * FROM (SELECT '{dim}' AS dim, toString({dim}) AS value, "
        f"sum({figures.budget.spend_sql(params)}) AS spend FROM ledger FINAL WHERE {where} "
        f"GROUP BY value ORDER BY spend DESC, value LIMIT {int(limit)})"
        for dim in CONTRIBUTOR_DIMENSIONS
    ]
    rows = reader.query(" UNION ALL ".join(parts), params).rows
    found: dict[str, list[tuple[str, Decimal]]] = {dim: [] for dim in CONTRIBUTOR_DIMENSIONS}
    for dim, value, spend in rows:
        found[str(dim)].append((str(value), to_decimal(spend)))
    for dim in found:
        found[dim].sort(key=lambda item: (-item[1], item[0]))
    return found
