"""Forecast alerts need evidence (#10 defect 6): a minimum observed span and spend.

Against a real chDB ledger, evaluated at chosen instants: a burst at the start of a period never
forecasts (neither seconds after it nor hours later), a steady overspend still forecasts early,
and the evidence thresholds are configurable per budget.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from spendstream.alerts.config import Alerting, load_alerting
from spendstream.alerts.evaluator import BudgetEvaluator
from spendstream.alerts.figures import compute_figures
from spendstream.config import Settings
from spendstream.events import UsageEvent
from spendstream.notifications.outbox import Outbox
from spendstream.pricing import default_pricer
from spendstream.sinks.ledger import LedgerEntry, LedgerWriter

PRICER = default_pricer()
MONTH_START = datetime(2026, 11, 1, tzinfo=UTC)


def event(at: datetime, tokens: int = 100_000) -> UsageEvent:
    return UsageEvent(
        event_time=at,
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=tokens,
        output_tokens=tokens // 10,
        tags={"team": "research"},
    )


def write(client: Client, events: list[UsageEvent]) -> Decimal:
    LedgerWriter(client, 1).write([LedgerEntry(e, PRICER.rate(e)) for e in events])
    return sum((PRICER.rate(e).cost_total for e in events), Decimal(0))


def month_budget(limit: Decimal, **extra: Any) -> Alerting:
    budget = {
        "name": "research-monthly",
        "scope": {"team": "research"},
        "period": "month",
        "limit": str(limit.quantize(Decimal("0.0001"))),
        "thresholds": [100],
        "forecast": True,
        **extra,
    }
    return load_alerting(Settings(budgets=[budget], alerts={}))


def test_burst_at_the_start_of_a_period_sends_no_forecast(ledger_client: Client) -> None:
    """The demo's case: 10 s of traffic, 3.8 % of the budget, no forecast; nor later, once the
    burst has stopped."""
    start = MONTH_START + timedelta(days=3, hours=9)
    spent = write(ledger_client, [event(start + timedelta(seconds=s)) for s in range(10)])
    config = month_budget(spent / Decimal("0.038"))
    evaluator = BudgetEvaluator(config, Outbox(ledger_client))
    for after in (timedelta(seconds=10), timedelta(minutes=30), timedelta(hours=2)):
        now = start + after
        (figures,) = compute_figures(evaluator.store.reader, config.budgets, config.alerts, now)
        # Before an hour of evidence, no forecast; after it, the stopped burst adds nothing.
        assert figures.forecast in (None, figures.spend.quantize(Decimal("0.01"))), after
        assert (figures.forecast is None) == (after < timedelta(hours=1))
        assert evaluator.evaluate(now=now) == [], after


def test_steady_overspend_still_forecasts_early(ledger_client: Client) -> None:
    """One call a minute, at a rate that spends the budget three times over in a month: the
    forecast fires once an hour of spend is seen and 1 % of the limit is spent (default
    evidence), 2 h 40 min into a 30-day month."""
    start = MONTH_START + timedelta(days=1)
    calls = [event(start + timedelta(minutes=m)) for m in range(0, 160)]
    per_call = PRICER.rate(calls[0]).cost_total
    limit = per_call * 60 * 24 * 30 / 3
    evaluator = BudgetEvaluator(month_budget(limit), Outbox(ledger_client))
    write(ledger_client, calls[:50])
    assert evaluator.evaluate(now=start + timedelta(minutes=50)) == []  # seen < 1 h
    write(ledger_client, calls[50:70])
    assert evaluator.evaluate(now=start + timedelta(minutes=70)) == []  # spent < 1 %
    write(ledger_client, calls[70:])
    created = evaluator.evaluate(now=start + timedelta(minutes=160))
    assert [a.kind for a in created] == ["forecast"]
    assert created[0].forecast_usd is not None and created[0].forecast_usd > 2 * limit


def test_evidence_thresholds_are_configurable_per_budget(ledger_client: Client) -> None:
    start = MONTH_START + timedelta(days=1)
    calls = [event(start + timedelta(minutes=m)) for m in range(0, 16)]
    per_call = PRICER.rate(calls[0]).cost_total
    write(ledger_client, calls)
    limit = per_call * 60 * 24 * 30 / 3
    now = start + timedelta(minutes=16)
    reader = Outbox(ledger_client).reader
    plain = month_budget(limit)
    (default,) = compute_figures(reader, plain.budgets, plain.alerts, now)
    assert default.forecast is None and default.overrun_at is None
    eager = month_budget(limit, forecast_min_percent="0.1", forecast_min_span="10m")
    (early,) = compute_figures(reader, eager.budgets, eager.alerts, now)
    assert early.forecast is not None and early.forecast > 2 * limit
    assert early.overrun_at is not None


def test_forecast_window_is_configurable_per_budget(ledger_client: Client) -> None:
    """docs/alerts-forecast.md lists forecast_window per budget: it was refused as an unknown
    key. A budget's own window measures its burn rate; others keep [alerts]' 6 h."""
    start = MONTH_START + timedelta(days=1)
    calls = [event(start + timedelta(minutes=m)) for m in range(0, 120)]
    per_call = PRICER.rate(calls[0]).cost_total
    write(ledger_client, calls)
    now = start + timedelta(minutes=120)
    reader = Outbox(ledger_client).reader
    plain = month_budget(per_call * 1000)
    (wide,) = compute_figures(reader, plain.budgets, plain.alerts, now)
    assert wide.windows.burn_start == now - timedelta(hours=6)
    assert wide.burn_spend == per_call * 120
    narrow = month_budget(per_call * 1000, forecast_window="30m", forecast_min_span="2h")
    (short,) = compute_figures(reader, narrow.budgets, narrow.alerts, now)
    assert short.windows.burn_start == now - timedelta(minutes=30)
    assert short.burn_spend == per_call * 30
    assert short.windows.min_span == timedelta(minutes=30)  # capped at the window, as [alerts]'
