"""Budget evaluation and delivery against a real chDB ledger and real Slack/SMTP servers.

The ledger is filled directly through LedgerWriter; evaluation runs at chosen instants.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import typer
from clickhouse_connect.driver.client import Client
from typer.testing import CliRunner, Result

from spendstream.alerts.config import Alerting, load_alerting
from spendstream.alerts.evaluator import BudgetEvaluator
from spendstream.alerts.figures import compute_figures, split_hours, split_settled
from spendstream.alerts.silences import SilenceRequest, apply_silence
from spendstream.config import Settings
from spendstream.events import UsageEvent
from spendstream.money import format_usd
from spendstream.notifications.delivery import Dispatcher
from spendstream.notifications.outbox import Outbox
from spendstream.pricing import default_pricer
from spendstream.sinks.ledger import LedgerEntry, LedgerWriter
from spendstream.sinks.open_windows import Deferral
from tests.support.slack_server import SlackServer
from tests.support.smtp_server import SmtpServer

PRICER = default_pricer()
NOON = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


@pytest.fixture
def client(ledger_client: Client) -> Client:
    """A migrated chDB ledger (with the alert tables) in the test's own directory."""
    return ledger_client


def run_cli(app: typer.Typer, *args: str) -> Result:
    """Invoke a CLI app; restore logging after (the CLI binds a handler to the runner's
    stderr, which is closed once the invocation returns)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return CliRunner().invoke(app, list(args))
    finally:
        root.handlers[:], root.level = handlers, level


def event(at: datetime, tokens: int = 100_000, **tags: str) -> UsageEvent:
    return UsageEvent(
        event_time=at,
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=tokens,
        output_tokens=tokens // 10,
        tags={"team": "search", "env": "prod", "app": "ranker", "user": "u1", **tags},
    )


def cost(*events: UsageEvent) -> Decimal:
    return sum((PRICER.rate(e).cost_total for e in events), Decimal(0))


def write(client: Client, *events: UsageEvent) -> None:
    LedgerWriter(client, 1).write([LedgerEntry(e, PRICER.rate(e)) for e in events])


def alerting(
    budgets: list[dict[str, Any]], channels: dict[str, str] | None = None, **alerts: Any
) -> Alerting:
    settings = Settings(budgets=budgets, alerts={"channels": channels or {}, **alerts})
    return load_alerting(settings)


def tiny_budget(name: str, team: str = "search", **extra: Any) -> dict[str, Any]:
    """A day budget over ``team`` that one event takes past 100 %."""
    return {
        "name": name,
        "scope": {"team": team},
        "period": "day",
        "limit": "0.000001",
        "thresholds": [100],
        "forecast": False,
        **extra,
    }


def history(client: Client, table: str = "alerts") -> list[dict[str, Any]]:
    result = client.query(f"SELECT * FROM {table} FINAL ORDER BY created_at")
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def wait_for(check: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_thresholds_fire_once_each_with_figures_and_contributors(
    client: Client, slack: SlackServer, smtp: SmtpServer
) -> None:
    unit = event(NOON - timedelta(hours=1))
    limit = cost(unit) * 10  # ten of these events spend the whole budget
    config = alerting(
        [
            {
                "name": "search-prod",
                "scope": {"team": "search", "env": "prod"},
                "period": "day",
                "limit": str(limit),
                "thresholds": [50, 80, 100],
                "forecast": False,
                "channels": ["oncall-slack", "finance-mail"],
                "owner": "search-oncall",
            }
        ],
        {"oncall-slack": "slack://T0/B0/XXX", "finance-mail": smtp.apprise_url("fin@example.com")},
        slack_webhook_base=slack.base_url,
        group_wait="0s",
    )
    store = Outbox(client)
    dispatcher = Dispatcher(store, config.alerts)
    spent: list[UsageEvent] = [event(NOON - timedelta(hours=2), team="other")]  # out of scope
    for step, (count, threshold) in enumerate(((5, 50), (3, 80), (2, 100))):
        new = [
            event(NOON - timedelta(minutes=50 - 10 * step + i), app=f"app{i % 2}", user=f"u{i}")
            for i in range(count)
        ]
        spent += new
        write(client, *new)
        created = BudgetEvaluator(config, store).evaluate(now=NOON)
        assert [(a.kind, a.threshold) for a in created] == [("threshold", threshold)]
        assert dispatcher.tick(NOON + timedelta(seconds=1)) == 2  # slack + mail
    in_scope = [e for e in spent if e.tags["team"] == "search"]
    # Replays and restarts: a fresh evaluator over the same ledger creates nothing more.
    write(client, *spent)
    assert BudgetEvaluator(config, store).evaluate(now=NOON) == []
    assert dispatcher.tick(NOON + timedelta(seconds=5)) == 0
    assert len(slack.received) == 3 and len(smtp.messages) == 3
    last_slack, last_mail = slack.texts()[-1], smtp.texts()[-1]
    for text in (last_slack, last_mail):
        assert "search-prod: 100% of budget reached" in text
        assert (
            f"Spend: {format_usd(cost(*in_scope))} of {format_usd(limit)} limit (100.00%)" in text
        )
        assert "Scope: env=prod, team=search" in text
        assert "owner: search-oncall" in text
        assert "FROM ledger FINAL WHERE" in text
    top_apps = re.search(r"Top apps: (.*)", last_slack)
    assert top_apps is not None
    app0 = [e for e in in_scope if e.tags["app"] == "app0"]
    assert top_apps.group(1).startswith(f"app0 {format_usd(cost(*app0))}")
    assert "50% of budget reached" in slack.texts()[0] and "80%" in smtp.texts()[1]
    rows = history(client, "alert_deliveries")
    assert len(rows) == 6 and {r["status"] for r in rows} == {"delivered"}
    assert {r["attempts"] for r in rows} == {1}


def test_forecast_fires_before_the_limit_with_a_projected_date(client: Client) -> None:
    # Steady spend over the last 6 hours of the day so far; the limit is 1.5x today's spend,
    # so at this rate the day ends around 2x: the forecast must fire, the 100% threshold not.
    events = [event(NOON - timedelta(minutes=m)) for m in range(5, 360, 10)]
    write(client, *events)
    spend = cost(*events)
    config = alerting(
        [
            {
                "name": "fc",
                "scope": {"team": "search"},
                "period": "day",
                "limit": str(spend * 3 / 2),
                "thresholds": [100],
                "forecast": True,
            }
        ]
    )
    created = BudgetEvaluator(config, Outbox(client)).evaluate(now=NOON)
    assert [a.kind for a in created] == ["forecast"]
    alert = created[0]
    assert alert.forecast_usd is not None and alert.forecast_usd > alert.limit_usd
    assert alert.overrun_at is not None and NOON < alert.overrun_at < NOON + timedelta(hours=12)
    # 50 % more at the same burn rate takes about 3 hours (6h of spend took `spend`).
    assert abs(alert.overrun_at - (NOON + timedelta(hours=3))) < timedelta(minutes=20)
    assert "limit reached around 2026-11-18 1" in alert.body
    # Below a projected overrun nothing fires.
    relaxed = alerting(
        [
            {
                "name": "fc2",
                "scope": {"team": "search"},
                "period": "day",
                "limit": str(spend * 4),
                "thresholds": [100],
                "forecast": True,
            }
        ]
    )
    assert BudgetEvaluator(relaxed, Outbox(client)).evaluate(now=NOON) == []


def test_spike_fires_on_a_burst_and_not_on_steady_traffic(client: Client) -> None:
    steady = [event(NOON - timedelta(seconds=s), tokens=20_000) for s in range(30, 3900, 60)]
    write(client, *steady)
    per_minute = cost(steady[0])
    config = alerting(
        [
            {
                "name": "sp",
                "scope": {"team": "search"},
                "limit": "1000000",
                "forecast": False,
                "spike": {
                    "window": "5m",
                    "baseline": "1h",
                    "factor": 3,
                    "min_spend": str(per_minute),
                },
            }
        ]
    )
    evaluator = BudgetEvaluator(config, Outbox(client))
    assert evaluator.evaluate(now=NOON) == []
    assert evaluator.evaluate(now=NOON - timedelta(minutes=7)) == []
    burst = [event(NOON - timedelta(seconds=s), tokens=20_000, user="bot") for s in range(5, 120)]
    write(client, *burst)
    created = evaluator.evaluate(now=NOON)
    assert [a.kind for a in created] == ["spike"]
    assert "Spike:" in created[0].body and "Top users: bot" in created[0].body
    # Explain's sentence: the spike window against the 5 min before it, the new user named.
    assert "Why: search +$" in created[0].body and "a new user bot" in created[0].body
    assert evaluator.evaluate(now=NOON + timedelta(seconds=30)) == []  # once per cooldown


def test_silenced_budget_sends_nothing_and_history_says_silenced(
    client: Client, slack: SlackServer
) -> None:
    write(client, event(NOON - timedelta(minutes=5)))
    config = alerting(
        [tiny_budget("quiet", channels=["oncall"])],
        {"oncall": "slack://T0/B0/XXX"},
        slack_webhook_base=slack.base_url,
        group_wait="0s",
    )
    store = Outbox(client)
    request = SilenceRequest(budget="quiet", duration="2h", reason="load test", by="ana")
    apply_silence(store, config, request, NOON - timedelta(minutes=1))
    created = BudgetEvaluator(config, store).evaluate(now=NOON)
    assert [a.state for a in created] == ["silenced"]
    assert Dispatcher(store, config.alerts).tick(NOON + timedelta(seconds=1)) == 0
    assert slack.received == []
    (alert,) = history(client)
    assert alert["state"] == "silenced" and "by ana: load test" in alert["note"]
    assert [d["status"] for d in history(client, "alert_deliveries")] == ["silenced"]


def test_alerts_crossing_together_are_grouped_and_resolve_with_the_period(
    client: Client, slack: SlackServer
) -> None:
    write(
        client, event(NOON - timedelta(minutes=5)), event(NOON - timedelta(minutes=4), team="ads")
    )
    budgets = [
        tiny_budget(name, team, channels=["oncall"])
        for name, team in (("search-day", "search"), ("ads-day", "ads"))
    ]
    config = alerting(budgets, {"oncall": "slack://T0/B0/XXX"}, slack_webhook_base=slack.base_url)
    store = Outbox(client)
    assert len(BudgetEvaluator(config, store).evaluate(now=NOON)) == 2
    # One creation time for both (`now` plus the pass's real duration, which a loaded machine
    # stretches past a second): the group waits 2 s from it, then goes out whole.
    (created,) = {row["created_at"] for row in history(client, "alert_deliveries")}
    assert Dispatcher(store, config.alerts).tick(created) == 0  # still inside group_wait (2 s)
    assert Dispatcher(store, config.alerts).tick(created + timedelta(seconds=2)) == 2
    (text,) = slack.texts()
    assert "ads-day: 100% of budget reached" in text and "search-day: 100%" in text
    BudgetEvaluator(config, store).evaluate(now=NOON + timedelta(days=1))
    assert {(a["state"], a["note"]) for a in history(client)} == {("resolved", "period ended")}


def test_slack_outage_is_retried_until_delivered_once(client: Client, slack: SlackServer) -> None:
    now = datetime.now(UTC)
    write(client, event(now - timedelta(minutes=1)))
    config = alerting(
        [tiny_budget("outage", period="month", channels=["oncall"])],
        {"oncall": "slack://T0/B0/XXX"},
        slack_webhook_base=slack.base_url,
        group_wait="0s",
        delivery={"retry_initial": "0.5s", "retry_max": "2s", "poll_every": "0.2s"},
    )
    store = Outbox(client)
    slack.stop()
    dispatcher = Dispatcher(store, config.alerts)
    thread = threading.Thread(target=dispatcher.run, daemon=True)
    thread.start()
    try:
        assert len(BudgetEvaluator(config, store).evaluate()) == 1
        wait_for(lambda: history(client, "alert_deliveries")[0]["attempts"] >= 3)
        (pending,) = history(client, "alert_deliveries")
        assert pending["status"] == "pending" and pending["last_error"]
        time.sleep(2)  # the outage goes on (the 30 s outage is in test_alerts_worker)
        slack.start()
        wait_for(lambda: history(client, "alert_deliveries")[0]["status"] == "delivered")
        time.sleep(1)
    finally:
        dispatcher.stop()
        thread.join(5)
    (done,) = history(client, "alert_deliveries")
    assert len(slack.received) == 1
    assert done["attempts"] >= 4 and done["delivered_at"] is not None
    assert "outage: 100% of budget reached" in slack.texts()[0]


def test_split_hours_reads_whole_hours_from_rollups_and_edges_from_the_ledger() -> None:
    def at(hour: int, minute: int = 0) -> datetime:
        return datetime(2026, 11, 28, hour, minute, tzinfo=UTC)

    assert split_hours(at(9, 30), at(12, 15)) == (
        [(at(9, 30), at(10)), (at(12), at(12, 15))],
        (at(10), at(12)),
    )
    assert split_hours(at(9), at(11)) == ([], (at(9), at(11)))
    assert split_hours(at(9, 10), at(9, 50)) == ([(at(9, 10), at(9, 50))], None)


def test_figures_from_hourly_rollups_plus_ledger_edges_equal_the_ledger(client: Client) -> None:
    events = [
        event(NOON - timedelta(minutes=m), tokens=1_000 + m, **{"cost-center": f"cc{m % 2}"})
        for m in range(1, 200, 7)
    ]
    events += [event(NOON - timedelta(minutes=m), team="other") for m in range(3, 150, 11)]
    write(client, *events)
    config = alerting(
        [
            {"name": "by-team", "scope": {"team": "search"}, "limit": "100"},  # rollup + edges
            {"name": "by-tag", "scope": {"cost-center": "cc1"}, "limit": "100"},  # ledger only
        ]
    )
    now = NOON - timedelta(minutes=2, seconds=30)
    team, tag = compute_figures(Outbox(client).reader, config.budgets, config.alerts, now)
    assert team.spend == cost(*(e for e in events if e.tags["team"] == "search"))
    assert tag.spend == cost(*(e for e in events if e.tags.get("cost-center") == "cc1"))
    assert team.burn_spend == cost(
        *(
            e
            for e in events
            if e.tags["team"] == "search" and now - timedelta(hours=6) <= e.event_time < now
        )
    )


def test_split_settled_reads_the_open_hour_and_later_from_the_ledger() -> None:
    def at(day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2026, 11, day, hour, minute, tzinfo=UTC)

    month = (at(1, 0), datetime(2026, 12, 1, tzinfo=UTC))
    assert split_settled(*month, at(28, 12, 15)) == (
        [(at(28, 12), month[1])],
        (at(1, 0), at(28, 12)),
    )
    assert split_settled(at(28, 9, 30), at(28, 11), at(28, 12, 15)) == split_hours(
        at(28, 9, 30), at(28, 11)
    )
    assert split_settled(at(28, 12, 5), at(28, 14), at(28, 12, 15)) == (
        [(at(28, 12, 5), at(28, 14))],
        None,
    )


def test_a_batch_woken_evaluation_sees_the_open_hour_before_its_rollups_settle(
    client: Client,
) -> None:
    """The worker defers the open hour's rollups until the stream drains, and the batch
    observers wake the evaluation before that: figures must not wait for the drain (the alert
    came only at the next full pass, up to ``evaluate_every`` = 30 s later)."""
    now = NOON + timedelta(minutes=20)
    writer = LedgerWriter(client, 1, deferral=Deferral(clock=lambda: now))
    earlier, recent = event(NOON - timedelta(hours=3)), event(NOON + timedelta(minutes=10))
    writer.write([LedgerEntry(e, PRICER.rate(e)) for e in (earlier, recent)])
    stale = client.query(
        "SELECT count() FROM rollup_hour_lean FINAL WHERE window_start = {h:DateTime}", {"h": NOON}
    ).result_rows
    assert stale == [(0,)]  # the open hour waits for the drain, as in the worker
    config = alerting([{"name": "month", "scope": {"team": "search"}, "limit": "100"}])
    (figures,) = compute_figures(Outbox(client).reader, config.budgets, config.alerts, now)
    assert figures.spend == cost(earlier, recent)
    writer.settle()
    (settled,) = compute_figures(Outbox(client).reader, config.budgets, config.alerts, now)
    assert settled.spend == cost(earlier, recent)
