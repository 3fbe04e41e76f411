"""Budget status and alert history as tables: the one implementation the CLI and the API share.

Values are exact (Decimals, UTC datetimes); the CLI formats them for people, the API encodes
them as JSON. Works with any :class:`spendstream.sinks.access.Reader`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from spendstream.alerts.adjust import budget_figures
from spendstream.alerts.config import Alerting, BudgetConfig
from spendstream.periods import period_label
from spendstream.sinks.access import QueryResult, Reader
from spendstream.sinks.errors import UNKNOWN_TABLE, QueryError
from spendstream.sinks.params import Params, moment, strings

STATUS_COLUMNS = [
    "budget", "period", "spend", "limit", "percent", "forecast", "overrun", "alerts",
    "currency", "rate", "period_start", "period_end",
]  # fmt: skip


def firing_alerts(reader: Reader, names: Sequence[str]) -> dict[str, str]:
    """Budget name → its firing alerts (``50%, 80%, forecast``): thresholds ascending, then
    the other kinds by name.

    No alert table (never migrated) means nothing has fired; any other failure is raised (an
    outage is :class:`~spendstream.sinks.errors.StorageUnavailable`), never "nothing firing"."""
    if not names:
        return {}
    try:
        result = reader.query(
            "SELECT budget, kind, threshold FROM alerts FINAL "
            "WHERE state = 'firing' AND budget IN {names:Array(String)}",
            {"names": list(names)},
        )
    except QueryError as exc:
        if exc.code != UNKNOWN_TABLE:
            raise
        return {}
    firing: dict[str, set[tuple[int, str]]] = {}
    for budget, kind, threshold in result.rows:
        firing.setdefault(str(budget), set()).add(_alert_order(str(kind), int(threshold)))
    return {
        budget: ", ".join(label for _, label in sorted(found)) for budget, found in firing.items()
    }


def _alert_order(kind: str, threshold: int) -> tuple[int, str]:
    """Sort key and label: thresholds ascending by percentage, then other kinds by name."""
    if kind == "threshold":
        return threshold, f"{threshold}%"
    return 10_000, kind


def budget_status(
    reader: Reader, alerting: Alerting, budgets: Sequence[BudgetConfig], now: datetime
) -> QueryResult:
    """Spend vs limit of ``budgets`` in their current period at ``now``, with the forecast
    (None: too early), the projected overrun instant, the firing alerts and the period's
    bounds (UTC instants)."""
    figures = budget_figures(reader, budgets, alerting, now)
    firing = firing_alerts(reader, [b.name for b in budgets])
    rows: list[list[Any]] = [
        [
            f.budget.name,
            period_label(
                f.budget.period,
                f.budget.timezone,
                f.windows.period_start,
                f.budget.fiscal_year_start,
            ),
            f.spend,
            f.limit,
            f.percent,
            f.forecast,
            f.overrun_at,
            firing.get(f.budget.name, ""),
            f.budget.currency or "USD",
            f.converted.describe() if f.converted else "",
            f.windows.period_start,  # the real bounds: a pace per day or hour divides by them
            f.windows.period_end,
        ]
        for f in figures
    ]
    return QueryResult(list(STATUS_COLUMNS), rows)


def alert_history_sql(since: datetime, budgets: Sequence[str] | None = None) -> tuple[str, Params]:
    """Alerts created since ``since`` (of ``budgets`` only, when given) with their deliveries;
    the query and its bound parameters."""
    params: Params = {}
    where = f"a.created_at >= {moment(params, since)}"
    if budgets is not None:
        where += f" AND a.budget IN {strings(params, budgets)}" if budgets else " AND 0"
    sql = (
        "SELECT a.created_at AS created, a.budget, if(a.kind = 'threshold', "
        "concat(toString(a.threshold), '%'), a.kind) AS alert, a.state, a.spend, a.percent, "
        "d.deliveries, a.note FROM alerts AS a FINAL LEFT JOIN (SELECT alert_id, "
        "arrayStringConcat(groupArray(concat(channel, ':', status, ' x', toString(attempts), "
        "if(last_error = '' OR status = 'delivered', '', concat(' (', left(last_error, 80), ')'))"
        ")), '; ') AS deliveries FROM alert_deliveries FINAL GROUP BY alert_id) AS d "
        f"ON a.alert_id = d.alert_id WHERE {where} ORDER BY a.created_at"
    )
    return sql, params
