"""The notifications part on a real chDB outbox: typed records per kind through
``Outbox.enqueue`` (stored once, one delivery per channel, figure columns only with their own
meaning), the claim that keeps a second sender off a delivery in flight, and the channel URL
(send timeouts, idempotency key for webhooks, the Slack relay without patching)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from apprise.plugins.slack import NotifySlack
from clickhouse_connect.driver.client import Client

from spendstream.notifications.channels import Notifier, slack_relay, with_parameters
from spendstream.notifications.config import DeliveryConfig
from spendstream.notifications.delivery import Dispatcher, claim_window, idempotency_key
from spendstream.notifications.kinds import Digest, QuotaTransition, ReconciliationGap
from spendstream.notifications.outbox import Outbox
from spendstream.notifications.records import Delivery, Notification
from spendstream.periods import utc_now
from tests.support.slack_server import SlackServer

DAY = datetime(2026, 11, 18, tzinfo=UTC)


class Settings:
    """The delivery settings a dispatcher reads (``[alerts]``)."""

    def __init__(self, channels: dict[str, str], **delivery: Any) -> None:
        self.channels = channels
        self.group_wait = timedelta(0)
        self.slack_webhook_base: str | None = None
        self.delivery = DeliveryConfig.model_validate(delivery)


def gap(channels: tuple[str, ...] = ("ops",)) -> ReconciliationGap:
    return ReconciliationGap(
        notification_id="r" * 32,
        subject="reconcile/openai/acct/gpt-4o",
        channels=channels,
        period_start=DAY,
        period_end=DAY + timedelta(days=1),
        title="[spendstream] reconciliation",
        body="we under-estimate",
        provider="openai",
        invoiced_usd=Decimal("120.50"),
        our_usd=Decimal("100"),
        percent=Decimal("17.01"),
    )


def deliveries(client: Client) -> list[dict[str, Any]]:
    result = client.query("SELECT * FROM alert_deliveries FINAL ORDER BY channel")
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def test_each_kind_is_stored_once_with_its_own_figures(ledger_client: Client) -> None:
    outbox = Outbox(ledger_client)
    now = utc_now()
    stored = outbox.enqueue(gap(("ops", "mail")), now)
    assert isinstance(stored, Notification) and stored.kind == "reconciliation"
    # the invoice is spend; our estimate is no limit, so no figure column holds it
    assert (stored.spend, stored.limit_usd, stored.percent) == (
        Decimal("120.50"),
        Decimal(0),
        Decimal("17.01"),
    )
    assert outbox.enqueue(gap(("ops", "mail")), now) is None  # alert-once
    assert [(d["channel"], d["status"]) for d in deliveries(ledger_client)] == [
        ("mail", "pending"),
        ("ops", "pending"),
    ]
    quota = QuotaTransition(
        notification_id="q" * 32,
        subject="per-user",
        channels=("ops",),
        period_start=DAY,
        period_end=DAY + timedelta(hours=1),
        title="t",
        body="b",
        action="block",
        key="user=u1",
        owner="",
        scope="all spend",
        unit="tokens",
        used=Decimal(2_000),
        limit=Decimal(1_000),
    ).row(now)
    assert (quota.kind, quota.state, quota.threshold) == ("quota_block", "firing", 0)
    assert (quota.spend, quota.limit_usd, quota.percent) == (0, 0, Decimal("200.00"))
    digest = Digest(
        notification_id="d" * 32,
        subject="digest",
        channels=("ops",),
        period_start=DAY,
        period_end=DAY + timedelta(days=1),
        title="t",
        body="b",
        every="day",
        spend=Decimal("42"),
    ).row(now)
    assert (digest.kind, digest.state, digest.resolved_at, digest.spend) == (
        "digest",
        "resolved",
        now,
        Decimal("42"),
    )


class SlowChannel:
    """A channel that, while the first send is in flight, lets a second dispatcher tick."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.in_flight = threading.Event()
        self.release = threading.Event()

    def send(self, channel: str, title: str, body: str, key: str) -> tuple[bool, str]:
        self.sent.append((channel, key))
        self.in_flight.set()
        assert self.release.wait(30)
        return True, ""


def test_a_delivery_in_flight_is_claimed_so_a_second_sender_does_not_repeat_it(
    ledger_client: Client,
) -> None:
    outbox = Outbox(ledger_client)
    outbox.enqueue(gap())
    settings = Settings({"ops": "json://127.0.0.1:9/hook"})
    channel = SlowChannel()
    first = Dispatcher(outbox, settings, channel.send)
    sending = threading.Thread(target=first.tick)
    sending.start()
    try:
        assert channel.in_flight.wait(30)
        # A new leader (or `reconcile alert --send`) polls meanwhile: the claim keeps it off.
        assert Dispatcher(outbox, settings, channel.send).tick() == 0
    finally:
        channel.release.set()
        sending.join(30)
    assert len(channel.sent) == 1
    (done,) = deliveries(ledger_client)
    assert (done["status"], done["attempts"]) == ("delivered", 1)
    assert channel.sent[0][1] == idempotency_key("ops", ["r" * 32])


class OutcomeLost(Outbox):
    """ClickHouse refuses every outcome write (the claim, the first write, goes through)."""

    def update_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        if any(d.attempts for d in deliveries):
            raise ConnectionError("ClickHouse went away")
        super().update_deliveries(deliveries)


def test_the_remaining_window_an_unrecorded_send_goes_again_only_after_the_claim(
    ledger_client: Client,
) -> None:
    """At-least-once, stated: a send whose outcome cannot be written is repeated, but not
    before its claim lapses (no tight loop of duplicates)."""
    outbox = OutcomeLost(ledger_client)
    outbox.enqueue(gap())
    settings = Settings({"ops": "json://127.0.0.1:9/hook"}, send_timeout="0.2s")
    sent: list[str] = []

    def send(channel: str, title: str, body: str, key: str) -> tuple[bool, str]:
        sent.append(key)
        return True, ""

    dispatcher = Dispatcher(outbox, settings, send)
    with pytest.raises(ConnectionError):
        dispatcher.tick()
    assert Dispatcher(Outbox(ledger_client), settings, send).tick() == 0  # still claimed
    later = utc_now() + claim_window(settings)
    assert Dispatcher(Outbox(ledger_client), settings, send).tick(later) == 1
    assert len(sent) == 2 and sent[0] == sent[1]  # same key: a webhook receiver can drop it


def test_channel_urls_get_send_timeouts_and_webhooks_an_idempotency_key() -> None:
    notifier = Notifier(
        Settings(
            {
                "hook": "json://127.0.0.1:9/hook",
                "slack": "slack://T0/B0/XXX",
                "mail": "mailto://u:p@127.0.0.1:25?to=a@example.com&rto=3",
            },
            send_timeout="7s",
        )
    )
    assert notifier.url("hook", "k1") == "json://127.0.0.1:9/hook?cto=7&rto=7&+Idempotency-Key=k1"
    assert notifier.url("slack", "k1") == "slack://T0/B0/XXX?cto=7&rto=7"
    assert notifier.url("mail", "k1").endswith("&rto=3&cto=7")  # the channel's own value kept
    assert with_parameters("json://h/p?a=1", {"a": "2"}) == "json://h/p?a=1"
    hook = notifier.plugin("hook", "k1")[0]
    assert hook.headers == {"Idempotency-Key": "k1"} and hook.socket_read_timeout == 7


def test_the_slack_relay_is_a_subclass_not_a_patched_instance() -> None:
    settings = Settings({"slack": "slack://T0/B0/XXX"})
    settings.slack_webhook_base = "http://127.0.0.1:9/services/"
    plugin = Notifier(settings).plugin("slack")[0]
    assert isinstance(plugin, NotifySlack) and type(plugin) is not NotifySlack
    assert type(plugin).webhook_url == "http://127.0.0.1:9/services"
    assert NotifySlack.webhook_url.startswith("https://hooks.slack.com")  # others untouched
    assert slack_relay("http://relay/").webhook_url == "http://relay"
    assert "webhook_url" not in vars(plugin)


def stored(kind: str, subject: str, threshold: int = 0) -> Notification:
    now = utc_now()
    return Notification(
        alert_id=f"{kind}-{subject}-{threshold}".ljust(32, "x"),
        budget=subject,
        kind=kind,  # type: ignore[arg-type]
        threshold=threshold,
        period_start=DAY,
        period_end=DAY + timedelta(days=1),
        channels=["oncall"],
        spend=Decimal(1),
        limit_usd=Decimal(1),
        percent=Decimal(100),
        title=f"one {kind}",
        body=f"BODY {kind} {threshold}",
        created_at=now,
        updated_at=now,
        version=1,
    )


def test_a_group_is_titled_by_its_kinds_and_lists_thresholds_ascending(
    ledger_client: Client, slack: SlackServer
) -> None:
    """A group of quota blocks was titled "N budget alerts", and a group's alerts came in the
    order the outbox returned them (50 %, 100 %, 80 %, spike)."""
    outbox = Outbox(ledger_client)
    settings = Settings({"oncall": "slack://T0/B0/XXX"})
    settings.slack_webhook_base = slack.base_url
    dispatcher = Dispatcher(outbox, settings)  # type: ignore[arg-type]
    now = utc_now()
    for alert in (
        stored("spike", "search"),
        stored("threshold", "search", 50),
        stored("threshold", "search", 100),
        stored("threshold", "search", 80),
    ):
        outbox.put(alert, now)
    assert dispatcher.tick(now) == 4
    (text,) = slack.texts()
    assert "[spendstream] 3 budget threshold alerts, 1 spend spike: search" in text
    order = [text.index(f"BODY {k}") for k in ("threshold 50", "threshold 80", "threshold 100")]
    assert order == sorted(order) and order[-1] < text.index("BODY spike")
    for user in range(25):
        outbox.put(stored("quota_block", "q-user", user), now)
    assert dispatcher.tick(now) == 25
    assert "[spendstream] 25 quota alerts: q-user" in slack.texts()[-1]
