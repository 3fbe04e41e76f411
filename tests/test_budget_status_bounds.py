"""Budget status gives each budget's real period bounds, so a pace per day or hour (the
Overview's budget lines) divides by the period's true length: a quarter of 90 days is not three
times the current month (real chDB)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.alerts.config import Alerting, AlertsConfig, BudgetConfig
from spendstream.alerts.status import STATUS_COLUMNS, budget_status
from spendstream.sinks.access import ClientReader

pytestmark = pytest.mark.integration


def test_status_gives_the_real_period_bounds(ledger_client: Client) -> None:
    budgets = tuple(
        BudgetConfig.model_validate(budget)
        for budget in (
            {"name": "q", "period": "quarter", "fiscal_year_start": 12, "limit": "10"},
            {"name": "y", "period": "year", "limit": "10"},
            {"name": "m", "limit": "10"},
        )
    )
    alerting = Alerting(budgets=budgets, alerts=AlertsConfig(), source="test")
    now = datetime(2026, 12, 7, 19, 0, tzinfo=UTC)
    result = budget_status(ClientReader(ledger_client), alerting, budgets, now)
    bounds = {
        row[0]: (row[STATUS_COLUMNS.index("period_start")], row[STATUS_COLUMNS.index("period_end")])
        for row in result.rows
    }
    days = {name: (end - start).days for name, (start, end) in bounds.items()}
    assert days == {"q": 90, "y": 365, "m": 31}  # Dec-Feb; 2026; December
    assert bounds["q"][0] == datetime(2026, 12, 1, tzinfo=UTC)
