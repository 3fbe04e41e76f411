"""The ``prompt_growth`` budget rule on a real chDB ledger: fires once per budget and week when
the p50 of input tokens per call grows by the configured percentage, with the figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.alerts.config import load_alerting
from spendstream.alerts.evaluator import BudgetEvaluator
from spendstream.config import ConfigError, Settings
from spendstream.events import UsageEvent
from spendstream.notifications.outbox import Outbox
from spendstream.pricing import default_pricer
from spendstream.sinks.ledger import LedgerEntry, LedgerWriter

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # a Wednesday
PRICER = default_pricer()


def write(client: Client, team: str, tokens: list[int], days_ago: float) -> None:
    events = [
        UsageEvent(
            event_time=NOW - timedelta(days=days_ago, minutes=i),
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=count,
            output_tokens=10,
            tags={"team": team},
        )
        for i, count in enumerate(tokens)
    ]
    LedgerWriter(client, 1).write([LedgerEntry(e, PRICER.rate(e)) for e in events])


def budget(name: str, team: str, **rule: Any) -> dict[str, Any]:
    return {
        "name": name,
        "scope": {"team": team},
        "period": "month",
        "limit": "1000",
        "forecast": False,
        "prompt_growth": {"increase_pct": 30, "min_events": 20, **rule},
    }


@pytest.mark.integration
def test_prompt_growth_fires_once_per_week_with_its_figures(ledger_client: Client) -> None:
    before = [1_000 + i for i in range(40)]  # p50 = 1020 (index 20 of 40)
    write(ledger_client, "search", before, days_ago=10)
    write(ledger_client, "search", [int(v * 1.3) + 1 for v in before], days_ago=2)  # +30 %
    write(ledger_client, "ads", before, days_ago=10)
    write(ledger_client, "ads", [int(v * 1.2) for v in before], days_ago=2)  # +20 %: quiet
    write(ledger_client, "few", before[:10], days_ago=10)
    write(ledger_client, "few", [v * 3 for v in before[:10]], days_ago=2)  # too few calls
    settings = Settings(
        budgets=[budget("search", "search"), budget("ads", "ads"), budget("few", "few")],
        alerts={"channels": {}},
    )
    evaluator = BudgetEvaluator(load_alerting(settings), Outbox(ledger_client))
    created = evaluator.evaluate(now=NOW)
    assert [(a.budget, a.kind, a.threshold) for a in created] == [("search", "prompt_growth", 30)]
    alert = created[0]
    assert alert.period_start == datetime(2026, 11, 16, tzinfo=UTC)  # the ISO week's Monday
    p50_after = sorted(int(v * 1.3) + 1 for v in before)[20]
    assert (
        f"p50 {p50_after} input tokens" in alert.body and "vs 1020 the 7 days before" in alert.body
    )
    growth = (Decimal(p50_after - 1020) * 100 / 1020).quantize(Decimal("0.01"))
    assert growth >= 30
    assert evaluator.evaluate(now=NOW + timedelta(hours=1)) == []  # once per week
    later = evaluator.evaluate(now=NOW + timedelta(days=5))  # next week: figures move on
    assert all(a.kind != "prompt_growth" or a.period_start > alert.period_start for a in later)


def test_prompt_growth_rule_is_validated() -> None:
    settings = Settings(
        budgets=[{**budget("b", "t"), "prompt_growth": {"increase_pct": 0}}],
        alerts={"channels": {}},
    )
    with pytest.raises(ConfigError, match="increase_pct"):
        load_alerting(settings)
