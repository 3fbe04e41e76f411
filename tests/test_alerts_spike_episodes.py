"""Spike alerts page once per episode (real chDB ledger, Slack stand-in).

The cooldown ran in fixed slots of the clock (counted from the Unix epoch, slot in the alert
id), so one spike paged again at the next slot boundary: with ``cooldown = "5m"`` a single $4
event at 21:44:05 paged at 21:44:07 and again at 21:45:05; with the default hour, at every
xx:00. It now runs from the budget's last spike alert.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from spendstream.alerts.config import Alerting
from spendstream.alerts.evaluator import BudgetEvaluator
from spendstream.notifications.delivery import Dispatcher
from spendstream.notifications.outbox import Outbox
from tests.support.slack_server import SlackServer
from tests.test_alerts_engine import alerting, event, history, write

T0 = datetime(2026, 12, 7, 21, 44, 5, tzinfo=UTC)


def spike_config(slack: SlackServer, team: str, **rule: str) -> Alerting:
    budget: dict[str, Any] = {
        "name": team,
        "scope": {"team": team},
        "period": "day",
        "limit": "1000000",
        "thresholds": [1000],
        "forecast": False,
        "spike": {"min_spend": "0.01", **rule},
        "channels": ["oncall"],
    }
    return alerting(
        [budget],
        {"oncall": "slack://T0/B0/XXX"},
        slack_webhook_base=slack.base_url,
        group_wait="0s",
    )


class Pager:
    """Evaluates at chosen instants (a fresh evaluator each time: a restart or a new leader)
    and delivers at once to the Slack stand-in."""

    def __init__(self, client: Client, slack: SlackServer, config: Alerting) -> None:
        self.store, self.slack, self.config = Outbox(client), slack, config
        self.dispatcher = Dispatcher(self.store, config.alerts)

    def at(self, now: datetime) -> list[str]:
        created = BudgetEvaluator(self.config, self.store).evaluate(now=now)
        self.dispatcher.tick(now + timedelta(seconds=1))
        return [a.kind for a in created]

    def pages(self) -> int:
        name = self.config.budgets[0].name
        return sum(f"{name}: spend spike" in text for text in self.slack.texts())


def test_one_spike_pages_once_across_cooldown_slot_boundaries(
    ledger_client: Client, slack: SlackServer
) -> None:
    write(ledger_client, event(T0, team="hostile"))  # the hostile test's repro
    pager = Pager(ledger_client, slack, spike_config(slack, "hostile", cooldown="5m"))
    assert pager.at(T0 + timedelta(seconds=2)) == ["spike"]
    for later in (60, 180, 298):  # 21:45:05 crossed the 5-minute slot; still in the window
        assert pager.at(T0 + timedelta(seconds=later)) == [], later
    assert pager.pages() == 1
    # The default hour: a spike at 22:59:50 does not page again at 23:00.
    hour = datetime(2026, 12, 7, 22, 59, 50, tzinfo=UTC)
    write(ledger_client, event(hour, team="hourly"))
    hourly = Pager(ledger_client, slack, spike_config(slack, "hourly"))
    assert hourly.at(hour + timedelta(seconds=2)) == ["spike"]
    assert hourly.at(hour + timedelta(seconds=15)) == []
    assert hourly.pages() == 1


def test_a_cooldown_shorter_than_the_window_does_not_repage_the_same_spend(
    ledger_client: Client, slack: SlackServer
) -> None:
    write(ledger_client, event(T0, team="short"))
    pager = Pager(ledger_client, slack, spike_config(slack, "short", cooldown="1m"))
    assert pager.at(T0 + timedelta(seconds=2)) == ["spike"]
    assert pager.at(T0 + timedelta(minutes=2)) == []  # cooldown over, same event in the window
    assert pager.pages() == 1


def test_a_spike_still_under_way_after_the_cooldown_pages_again_once(
    ledger_client: Client, slack: SlackServer
) -> None:
    write(
        ledger_client, *(event(T0 + timedelta(seconds=s), team="busy") for s in range(0, 420, 20))
    )
    pager = Pager(ledger_client, slack, spike_config(slack, "busy", cooldown="5m"))
    assert pager.at(T0 + timedelta(seconds=2)) == ["spike"]
    assert pager.at(T0 + timedelta(minutes=3)) == []
    assert pager.at(T0 + timedelta(minutes=5, seconds=10)) == ["spike"]  # still spiking
    assert pager.at(T0 + timedelta(minutes=5, seconds=20)) == []
    assert pager.pages() == 2
    first, second = history(ledger_client)
    assert first["alert_id"] != second["alert_id"]
