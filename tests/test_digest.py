"""The digest: composed from the ledger (spend per team and change, budgets, savings, tag
coverage), recorded once per period across restarts, received once by a real SMTP server and
the Slack stand-in through the alert outbox."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.alerts.config import load_alerting
from spendstream.alerts.delivery import Dispatcher
from spendstream.alerts.message import format_usd
from spendstream.alerts.store import AlertStore
from spendstream.config import ConfigError, DigestSettings, InsightsSettings, Settings
from spendstream.insights.digest import DigestJob, digest_period
from spendstream.pricing import default_pricer
from spendstream.worker.build import check_digest_channels
from tests.support.insight_data import START, generate
from tests.support.ledger_data import fill_ledger
from tests.support.slack_server import SlackServer
from tests.support.smtp_server import SmtpServer

pytestmark = pytest.mark.integration
NOW = START + timedelta(weeks=2, days=2, hours=9)  # Wednesday of the third week


def settings(slack: SlackServer, smtp: SmtpServer) -> Settings:
    return Settings(
        budgets=[{"name": "search", "scope": {"team": "search"}, "limit": "100"}],
        alerts={
            "channels": {
                "oncall": "slack://T0/B0/XXX",
                "finance": smtp.apprise_url("fin@example.com"),
            },
            "slack_webhook_base": slack.base_url,
            "group_wait": "0s",
        },
        digest=DigestSettings(every="1w", channels=["oncall", "finance"]),
    )


def test_digest_once_per_period_to_slack_and_email(
    ledger_client: Client, slack: SlackServer, smtp: SmtpServer
) -> None:
    rated = fill_ledger(ledger_client, generate())
    config = settings(slack, smtp)
    alerting = load_alerting(config)

    def job() -> DigestJob:  # a fresh job per "restart": nothing kept in memory
        return DigestJob(
            AlertStore(ledger_client), default_pricer(), InsightsSettings(), config.digest, alerting
        )

    created = job().run(NOW)
    assert created is not None and job().run(NOW + timedelta(hours=3)) is None
    start, end = digest_period("1w", NOW)
    assert (start, end) == (START + timedelta(weeks=1), START + timedelta(weeks=2))
    spend: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for event, rating in rated:
        if start <= event.event_time < end:
            spend[event.tag("team")][0] += rating.cost_total
        elif start - timedelta(weeks=1) <= event.event_time < start:
            spend[event.tag("team")][1] += rating.cost_total
    total = sum((now for now, _ in spend.values()), Decimal(0))
    body = created.body
    assert created.spend == total and f"Spend: {format_usd(total)}" in body
    for team, (now, _) in spend.items():
        assert f"- {team}: {format_usd(now)}" in body
    assert "- search: $" in body and "Budgets (current period):" in body
    assert "classify: gpt-4o -> " in body and "(rightsize)" in body
    assert "- team: 100.00%" in body and "- app: 100.00%" in body
    dispatcher = Dispatcher(AlertStore(ledger_client), alerting.alerts)
    assert dispatcher.tick(NOW + timedelta(seconds=1)) == 2
    assert dispatcher.tick(NOW + timedelta(seconds=2)) == 0
    assert len(slack.received) == 1 and len(smtp.messages) == 1
    assert "spendstream digest" in slack.texts()[0] and "rightsize" in smtp.texts()[0]
    # the next week gets its own digest
    assert job().run(NOW + timedelta(weeks=1)) is not None


def test_digest_channels_must_be_defined() -> None:
    config = Settings(digest=DigestSettings(channels=["nowhere"]))
    with pytest.raises(ConfigError, match=r"digest\.channels"):
        check_digest_channels(config, load_alerting(config))
    assert digest_period("1d", NOW) == (
        NOW.replace(hour=0) - timedelta(days=1),
        NOW.replace(hour=0),
    )
