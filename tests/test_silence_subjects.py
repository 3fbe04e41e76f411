"""A silence applies to any notification subject (docs/notifications.md), not only budgets: a
quota's block notices silenced through the CLI are recorded as silenced and not sent, and are
sent again once the silence is removed or has ended; a name that is no subject of any kind is a
usage error naming what exists."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import pytest
from clickhouse_connect.driver.client import Client
from typer.testing import CliRunner, Result

from spendstream.cli.errors import EXIT_USAGE
from spendstream.cli.root import app
from spendstream.notifications.config import DeliveryConfig
from spendstream.notifications.delivery import Dispatcher
from spendstream.notifications.kinds import QuotaTransition
from spendstream.notifications.outbox import Outbox
from spendstream.periods import utc_now

CONFIG = """\
[clickhouse]
dsn = "chdb://{directory}"

[alerts.channels]
oncall = "json://127.0.0.1:9/hook"

[[quotas]]
name = "q-user"
scope = {{ team = "support" }}
group_by = ["user"]
limit = "20"
per = "day"
channels = ["oncall"]
"""


class Settings:
    """The delivery settings a dispatcher reads (``[alerts]``)."""

    channels: ClassVar[dict[str, str]] = {"oncall": "json://127.0.0.1:9/hook"}
    group_wait = timedelta(0)
    slack_webhook_base: str | None = None
    delivery = DeliveryConfig()


def block(number: int) -> QuotaTransition:
    now = utc_now()
    return QuotaTransition(
        notification_id=f"{number:032d}",
        subject="q-user",
        channels=("oncall",),
        period_start=now,
        period_end=now + timedelta(days=1),
        title="q-user blocked user=racer1",
        body="over its limit",
        action="block",
        key="user=racer1",
        owner="",
        scope="team=support",
        unit="usd",
        used=Decimal(21),
        limit=Decimal(20),
    )


def statuses(client: Client, alert_id: str) -> list[str]:
    result = client.query(
        "SELECT status FROM alert_deliveries FINAL WHERE alert_id = {id:String}",
        parameters={"id": alert_id},
    )
    return [str(row[0]) for row in result.result_rows]


@pytest.fixture
def cli(ledger_client: Client, chdb_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (chdb_path.parent / "spendstream.toml").write_text(CONFIG.format(directory=chdb_path))
    monkeypatch.chdir(chdb_path.parent)


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.mark.usefixtures("cli")
def test_a_silenced_quota_block_is_recorded_silenced_and_sent_again_after(
    ledger_client: Client,
) -> None:
    sent: list[str] = []

    def send(channel: str, title: str, body: str, key: str) -> tuple[bool, str]:
        sent.append(title)
        return True, ""

    outbox = Outbox(ledger_client)
    dispatcher = Dispatcher(outbox, Settings(), send)  # type: ignore[arg-type]
    done = run("alerts", "silence", "q-user", "--for", "1h", "--reason", "load test")
    assert done.exit_code == 0, done.output
    assert "q-user: silenced until" in done.output

    first = outbox.enqueue(block(1), utc_now())
    assert first is not None
    assert dispatcher.tick() == 0
    assert sent == []
    assert statuses(ledger_client, first.alert_id) == ["silenced"]

    # removed: the next block goes out
    assert run("alerts", "unsilence", "q-user").exit_code == 0
    second = outbox.enqueue(block(2), utc_now())
    assert second is not None
    assert dispatcher.tick() == 1
    assert sent == ["q-user blocked user=racer1"]
    assert statuses(ledger_client, second.alert_id) == ["delivered"]
    assert statuses(ledger_client, first.alert_id) == ["silenced"]  # never sent late

    # ended: silenced for a minute, a block an hour later goes out
    assert run("alerts", "silence", "q-user", "--for", "1m").exit_code == 0
    third = outbox.enqueue(block(3), utc_now())
    assert third is not None
    assert dispatcher.tick(utc_now() + timedelta(hours=1)) == 1
    assert statuses(ledger_client, third.alert_id) == ["delivered"]


@pytest.mark.usefixtures("cli")
def test_a_run_that_notified_may_be_silenced_and_an_unknown_name_is_refused(
    ledger_client: Client,
) -> None:
    unknown = run("alerts", "silence", "hostile", "--for", "1h")
    assert unknown.exit_code == EXIT_USAGE, unknown.output
    assert "no budget named 'hostile'" in unknown.output
    assert "quotas: q-user" in unknown.output
    assert run("alerts", "silence", "run/agent/r1").exit_code == EXIT_USAGE
    stored = Outbox(ledger_client).enqueue(
        QuotaTransition(**{**block(9).__dict__, "subject": "run/agent/r1"}), utc_now()
    )
    assert stored is not None  # a subject no configuration lists, known from its notification
    assert run("alerts", "silence", "run/agent/r1").exit_code == 0


@pytest.mark.usefixtures("cli")
def test_alerts_list_with_nothing_to_show_says_so() -> None:
    shown = run("alerts", "list", "--since", "2026-12-01")
    assert shown.exit_code == 0, shown.output
    assert shown.output == "No alerts since 2026-12-01 00:00 UTC.\n"
    filtered = run("alerts", "list", "--budget", "q-user")
    assert filtered.exit_code == 0 and "No alerts for 'q-user' since " in filtered.output
    listed = run("alerts", "list", "-f", "json")
    assert listed.exit_code == 0 and listed.output == ""  # JSON lines: no line, no sentence
