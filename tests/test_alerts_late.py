"""Late events for an ended period still alert (real chDB ledger, Slack stand-in).

The hostile test: a day budget in Pacific/Kiritimati (UTC+14), $10 limit, a $10 event dated one
ms before the local day ended, sent after it ended: in the ledger, no alert at all (the
evaluator only looked at the current period). The SDK does this when it replays its spool after
a broker outage across midnight.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.alerts.config import Alerting, load_alerting
from spendstream.alerts.evaluator import BudgetEvaluator
from spendstream.config import ConfigError, Settings
from spendstream.notifications.delivery import Dispatcher
from spendstream.notifications.outbox import Outbox
from tests.support.slack_server import SlackServer
from tests.test_alerts_engine import alerting, cost, event, history, write

# Local midnight starting 2026-12-07 in Kiritimati: 2026-12-06 10:00 UTC.
DAY_END = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def day_budget(team: str, limit: str) -> dict[str, Any]:
    return {
        "name": team,
        "scope": {"team": team},
        "period": "day",
        "timezone": "Pacific/Kiritimati",
        "limit": limit,
        "thresholds": [50, 100],
        "forecast": False,
        "channels": ["oncall"],
    }


def config(slack: SlackServer, *budgets: dict[str, Any], **alerts: Any) -> Alerting:
    return alerting(
        list(budgets),
        {"oncall": "slack://T0/B0/XXX"},
        slack_webhook_base=slack.base_url,
        group_wait="0s",
        **alerts,
    )


def test_a_late_event_crossing_an_ended_period_alerts_once(
    ledger_client: Client, slack: SlackServer
) -> None:
    late = event(DAY_END - timedelta(milliseconds=1), team="late")
    on_time = event(DAY_END - timedelta(minutes=10), team="ontime")
    settings = config(
        slack, day_budget("late", str(cost(late))), day_budget("ontime", str(cost(on_time)))
    )
    store = Outbox(ledger_client)
    dispatcher = Dispatcher(store, settings.alerts)
    write(ledger_client, on_time)  # crosses in time: alerts in its period, not again after it
    created = BudgetEvaluator(settings, store).evaluate(now=DAY_END - timedelta(minutes=5))
    assert sorted((a.budget, a.threshold) for a in created) == [("ontime", 50), ("ontime", 100)]
    assert dispatcher.tick(DAY_END - timedelta(minutes=4)) == 2
    write(ledger_client, late)  # the spool replayed after midnight
    now = DAY_END + timedelta(seconds=5)
    created = BudgetEvaluator(settings, store).evaluate(now=now)
    assert sorted((a.budget, a.threshold) for a in created) == [("late", 50), ("late", 100)]
    assert all(a.period_end == DAY_END for a in created)
    assert dispatcher.tick(now + timedelta(seconds=1)) == 2
    (_, text) = slack.texts()
    assert "late: 100% of budget reached for day 2026-12-06 (ended), crossed by late events" in text
    assert "late: 50% of budget reached for day 2026-12-06 (ended)" in text
    # Exactly once: restarts, the resolution of the ended period's alerts, later passes.
    for later in (10, 60, 3600):
        assert BudgetEvaluator(settings, store).evaluate(now=now + timedelta(seconds=later)) == []
    assert dispatcher.tick(now + timedelta(hours=2)) == 0
    assert len(slack.received) == 2
    assert {a["state"] for a in history(ledger_client)} == {"resolved"}


def test_no_late_alert_once_the_grace_has_passed(ledger_client: Client, slack: SlackServer) -> None:
    late = event(DAY_END - timedelta(milliseconds=1), team="late")
    write(ledger_client, late)
    settings = config(slack, day_budget("late", str(cost(late))), late_grace="1h")
    store = Outbox(ledger_client)
    assert BudgetEvaluator(settings, store).evaluate(now=DAY_END + timedelta(hours=2)) == []
    off = config(slack, day_budget("late", str(cost(late))), late_grace="0s")
    assert BudgetEvaluator(off, store).evaluate(now=DAY_END + timedelta(seconds=5)) == []
    assert history(ledger_client) == []


def test_late_grace_is_validated_like_the_other_keys() -> None:
    for bad in ("-1h", "soon"):
        with pytest.raises(ConfigError, match=r"alerts\.late_grace"):
            load_alerting(Settings(budgets=[], alerts={"late_grace": bad}))
    assert load_alerting(Settings()).alerts.late_grace == timedelta(days=1)
