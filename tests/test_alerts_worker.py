"""The real worker (subprocess, Tansu broker, chDB) sends budget alerts to real Slack-webhook and
SMTP servers: once per threshold, through replays, SIGTERM and SIGKILL restarts; silences set
with the CLI reach the running worker."""

from __future__ import annotations

import signal
import time
from decimal import Decimal
from pathlib import Path

import pytest
from kafka import KafkaProducer

from spendstream.cli.alerts import alerts_app, budgets_app
from spendstream.embedded import TansuBroker
from spendstream.events import UsageEvent
from spendstream.money import format_usd
from spendstream.pricing import default_pricer
from tests.support.slack_server import SlackServer
from tests.support.smtp_server import SmtpServer
from tests.support.worker import WorkerProcess, wait_until, write_config
from tests.test_alerts_engine import run_cli

pytestmark = pytest.mark.integration

PRICER = default_pricer()
TOPIC = "spendstream.usage.v1"


def search_event(index: int) -> UsageEvent:
    return UsageEvent(
        event_id=f"search-{index}",
        provider="anthropic",
        model="claude-sonnet-4-5",
        input_tokens=4_000,
        output_tokens=400,
        tags={"team": "search", "app": f"app-{index % 2}", "user": f"user-{index % 4}"},
    )


def cost(events: list[UsageEvent]) -> Decimal:
    return sum((PRICER.rate(e).cost_total for e in events), Decimal(0))


def publish(bootstrap: str, events: list[UsageEvent]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for event in events:
        producer.send(TOPIC, event.to_json_bytes())
    producer.flush()
    producer.close()


def config_text(limit: Decimal, slack: SlackServer, smtp: SmtpServer, alerts: str = "") -> str:
    return f"""
[alerts]
slack_webhook_base = "{slack.base_url}"
group_wait = "0.5s"
{alerts}

[alerts.channels]
oncall-slack = "slack://T000/B000/XXXXXXXX"
finance-mail = "{smtp.apprise_url("finance@example.com")}"

[[budgets]]
name = "search-month"
scope = {{ team = "search" }}
period = "month"
limit = "{limit}"
thresholds = [50, 80, 100]
forecast = false
channels = ["oncall-slack", "finance-mail"]
owner = "search-oncall@example.com"

[[budgets]]
name = "ads-quiet"
scope = {{ team = "ads", env = "*" }}
limit = "0.000001"
thresholds = [100]
forecast = false
channels = ["oncall-slack"]
"""


@pytest.mark.heavy
def test_worker_sends_each_threshold_once_through_replays_and_restarts(
    tmp_path: Path, broker: TansuBroker, slack: SlackServer, smtp: SmtpServer, chdb_dsn: str
) -> None:
    events = [search_event(i) for i in range(10)]
    # Events 0-4 spend 50 % or more; 0-7 reach 80 %; all ten reach 100 %.
    limit = cost(events)
    assert cost(events[:5]) * 2 >= limit > cost(events[:4]) * 2
    assert cost(events[:8]) * 100 >= limit * 80 > cost(events[:7]) * 100
    config = write_config(
        tmp_path / "spendstream.toml",
        broker.bootstrap_servers,
        chdb_dsn,
        config_text(limit, slack, smtp),
    )
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        silenced = run_cli(
            alerts_app,
            "silence",
            "ads-quiet",
            "--for",
            "2h",
            "--reason",
            "migration",
            "-c",
            str(config),
        )
        assert silenced.exit_code == 0, silenced.output
        ads = UsageEvent(
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=10,
            tags={"team": "ads", "env": "prod"},
        )
        publish(broker.bootstrap_servers, [*events[:5], ads])
        for step, upto in enumerate((5, 8, 10)):
            if step:
                publish(broker.bootstrap_servers, events[upto - (3 if step == 1 else 2) : upto])
            wait_until(
                lambda n=step + 1: len(slack.received) >= n and len(smtp.messages) >= n,
                60,
                f"alert {step + 1} on Slack and by mail",
            )
        assert len(slack.received) == 3 and len(smtp.messages) == 3
        for text in (slack.texts()[2], smtp.texts()[2]):
            assert "search-month: 100% of budget reached" in text
            assert (
                f"Spend: {format_usd(cost(events))} of {format_usd(limit)} limit (100.00%)" in text
            )
            assert "Top models:" in text and "Top apps: app-" in text and "Top users: user-" in text
            assert "FROM ledger FINAL WHERE team = 'search'" in text
        assert "50% of budget reached" in slack.texts()[0]
        assert "80% of budget reached" in smtp.texts()[1]

        # Replays: the same events again change nothing.
        seen = worker.metric("spendstream_events_in")
        publish(broker.bootstrap_servers, events)
        wait_until(lambda: worker.metric("spendstream_events_in") >= seen + 10, 30, "replay")
        time.sleep(3)
        assert (len(slack.received), len(smtp.messages)) == (3, 3)

        for sig in (signal.SIGTERM, signal.SIGKILL):
            worker.stop(sig)
            worker = WorkerProcess(config, tmp_path / f"worker-{sig.name}.log").start()
            publish(broker.bootstrap_servers, events[-2:])
            time.sleep(4)  # start-up evaluation + dispatcher passes
            assert (len(slack.received), len(smtp.messages)) == (3, 3), sig.name

        alerts = worker.query(
            "SELECT budget, kind, threshold, state, note FROM alerts FINAL "
            "ORDER BY budget, threshold"
        ).rows
        assert [row[:4] for row in alerts] == [
            ["ads-quiet", "threshold", 100, "silenced"],
            ["search-month", "threshold", 50, "firing"],
            ["search-month", "threshold", 80, "firing"],
            ["search-month", "threshold", 100, "firing"],
        ]
        assert "migration" in alerts[0][4]
        deliveries = worker.query(
            "SELECT budget, status, attempts, count() FROM alert_deliveries FINAL "
            "GROUP BY budget, status, attempts ORDER BY budget"
        ).rows
        assert deliveries == [["ads-quiet", "silenced", 0, 1], ["search-month", "delivered", 1, 6]]
        listed = run_cli(alerts_app, "list", "-c", str(config), "-f", "json")
        assert listed.exit_code == 0 and listed.output.count("oncall-slack:delivered x1") == 3
        status = run_cli(budgets_app, "status", "-c", str(config), "-f", "json")
        assert status.exit_code == 0 and '"percent": "100.00%"' in status.output
    finally:
        worker.stop()


def deliveries(worker: WorkerProcess) -> dict[str, tuple[str, int]]:
    rows = worker.query("SELECT channel, status, attempts FROM alert_deliveries FINAL").rows
    return {str(row[0]): (str(row[1]), int(row[2])) for row in rows}


@pytest.mark.heavy
def test_slack_down_30s_with_a_worker_kill_delivers_once(
    tmp_path: Path, broker: TansuBroker, slack: SlackServer, smtp: SmtpServer, chdb_dsn: str
) -> None:
    spent = search_event(0)
    config = write_config(
        tmp_path / "spendstream.toml",
        broker.bootstrap_servers,
        chdb_dsn,
        # The whole budget in one event: 50, 80 and 100 % cross together and are grouped.
        config_text(
            cost([spent]),
            slack,
            smtp,
            # send_timeout bounds a send's claim (2 x 5 s + 5 s): a worker killed mid-send leaves
            # its claim to lapse before the restarted one retries.
            '[alerts.delivery]\nretry_initial = "1s"\nretry_max = "4s"\nsend_timeout = "5s"\n'
            # The SIGKILLed worker's evaluator lease expires quickly, so retries resume soon.
            "[leadership]\nlease_ttl_s = 3.0\nrenew_every_s = 0.5\n",
        ),
    )
    slack.stop()
    outage_started = time.monotonic()
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        publish(broker.bootstrap_servers, [spent])
        wait_until(lambda: len(smtp.messages) == 1, 60, "the mail (its server is up)")
        wait_until(
            lambda: deliveries(worker).get("oncall-slack", ("", 0))[1] >= 2, 30, "Slack retries"
        )
        worker.stop(signal.SIGKILL)  # mid-outage: the outbox must survive
        worker = WorkerProcess(config, tmp_path / "worker-2.log").start()
        before = deliveries(worker)["oncall-slack"][1]
        wait_until(
            lambda: deliveries(worker)["oncall-slack"][1] > before, 30, "retries after restart"
        )
        time.sleep(max(0.0, 30 - (time.monotonic() - outage_started)))
        assert slack.received == []
        slack.start()
        wait_until(lambda: len(slack.received) == 1, 30, "the Slack message after the outage")
        time.sleep(3)
        assert len(slack.received) == 1 and len(smtp.messages) == 1
        (text,) = slack.texts()
        for threshold in (50, 80, 100):
            assert f"search-month: {threshold}% of budget reached" in text
        final = deliveries(worker)
        assert final["finance-mail"] == ("delivered", 1)
        status, attempts = final["oncall-slack"]
        # Failed attempts before the kill (>= 2, waited for above) and after the restart (the
        # restarted worker first waits for the dead one's evaluator lease to expire), then the
        # delivery: counted from the outbox, not from the clock (the machine may be slow).
        assert status == "delivered" and attempts >= before + 2 >= 4, final
        errors = worker.query(
            "SELECT last_error, last_attempt_at > created_at FROM alert_deliveries FINAL "
            "WHERE channel = 'oncall-slack'"
        ).rows
        assert errors[0][1] in (True, 1, "true")
    finally:
        worker.stop()
