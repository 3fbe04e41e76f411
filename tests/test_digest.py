"""The digest: composed from the ledger (spend per team and change, budgets, savings, tag
coverage), recorded once per period across restarts, received once by a real SMTP server and
the Slack stand-in through the alert outbox."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.alerts.config import load_alerting
from spendstream.config import ConfigError, DigestSettings, InsightsSettings, Settings
from spendstream.embedded import TansuBroker
from spendstream.events import UsageEvent
from spendstream.insights.digest import DigestJob, digest_period
from spendstream.money import format_usd
from spendstream.notifications.delivery import Dispatcher
from spendstream.notifications.outbox import Outbox
from spendstream.notifications.text import inert
from spendstream.pricing import default_pricer
from spendstream.worker.build import check_digest_channels
from tests.support.insight_data import START, generate
from tests.support.ledger_data import fill_ledger
from tests.support.slack_server import SlackServer
from tests.support.smtp_server import SmtpServer
from tests.support.worker import WorkerProcess, wait_until, write_config

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


QUOTA_COLUMNS = ["quota", "key", "unit", "allowed", "over", "as_of", "resets_at", "version"]


def test_digest_once_per_period_to_slack_and_email(
    ledger_client: Client, slack: SlackServer, smtp: SmtpServer
) -> None:
    hostile = UsageEvent(
        event_time=START + timedelta(weeks=1, hours=1),
        provider="openai",
        model="gpt-4o",
        input_tokens=10,
        tags={"team": "<!here> *x*", "app": "a", "feature": "f"},
    )
    rated = fill_ledger(ledger_client, [*generate(), hostile])
    for key, allowed in (("user=bob", False), ("user=amy", True)):  # the quota status now
        ledger_client.insert(
            "quota_decisions",
            [["support-daily", key, "usd", allowed, not allowed, NOW, NOW + timedelta(hours=5), 1]],
            column_names=[
                "quota",
                "key",
                "unit",
                "allowed",
                "over",
                "as_of",
                "resets_at",
                "version",
            ],
        )
    config = settings(slack, smtp)
    alerting = load_alerting(config)

    def job() -> DigestJob:  # a fresh job per "restart": nothing kept in memory
        return DigestJob(
            Outbox(ledger_client), default_pricer(), InsightsSettings(), config.digest, alerting
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
        assert f"- {inert(team)}: {format_usd(now)}" in body
    assert "<!here>" not in body and inert("<!here> *x*") in body  # text from events is inert
    assert "- search: $" in body and "Budgets (current period):" in body
    assert "Quotas (now):" in body and "- support-daily: 1 of 2 keys blocked (user=bob)" in body
    assert "classify: gpt-4o -> " in body and "(rightsize)" in body
    assert "- team: 100.00%" in body and "- app: 100.00%" in body
    dispatcher = Dispatcher(Outbox(ledger_client), alerting.alerts)
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


def test_worker_sends_the_digest_once_across_restarts(
    tmp_path: Path,
    broker: TansuBroker,
    chdb_dsn: str,
    slack: SlackServer,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    extra = f"""
[alerts]
slack_webhook_base = "{slack.base_url}"
group_wait = "0s"

[alerts.channels]
oncall = "slack://T000/B000/XXXXXXXX"

[digest]
every = "1d"
channels = ["oncall"]
"""
    config = write_config(tmp_path / "digest.toml", broker.bootstrap_servers, chdb_dsn, extra)
    worker = start_worker(config)
    wait_until(lambda: len(slack.received) >= 1, 120, "the digest on Slack")
    assert worker.stop() == 0
    again = start_worker(config, name="again")
    log = tmp_path / "again.log"
    wait_until(lambda: "digest already recorded" in log.read_text(), 120, "the digest check")
    assert int(again.scalar("SELECT count() FROM alert_deliveries FINAL")) == 1
    assert len(slack.received) == 1 and "spendstream digest" in slack.texts()[0]
