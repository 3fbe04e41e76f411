"""Alert lifecycle: reminders, resolution after a re-rating, silences and the CLI without a
worker (real chDB ledger), and the evaluation loop's scheduling (pure unit test)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.alerts.evaluator import BudgetEvaluator
from spendstream.alerts.service import BudgetObserver, EvaluationLoop
from spendstream.alerts.silences import SilenceRequest, apply_silence
from spendstream.cli.alerts import alerts_app, budgets_app
from spendstream.money import format_usd
from spendstream.notifications.outbox import Outbox
from spendstream.notifications.records import Notification
from spendstream.sinks.ledger import LedgerEntry, LedgerWriter
from tests.test_alerts_engine import (
    NOON,
    PRICER,
    alerting,
    cost,
    event,
    history,
    run_cli,
    tiny_budget,
    write,
)


def test_reminders_repeat_once_per_interval_while_firing(ledger_client: Client) -> None:
    write(ledger_client, event(NOON - timedelta(minutes=5)))
    config = alerting([tiny_budget("rem", reminder="4h")])
    store = Outbox(ledger_client)
    assert [a.kind for a in BudgetEvaluator(config, store).evaluate(now=NOON)] == ["threshold"]
    assert BudgetEvaluator(config, store).evaluate(now=NOON + timedelta(hours=3)) == []
    later = NOON + timedelta(hours=4, minutes=1)
    (reminder,) = BudgetEvaluator(config, store).evaluate(now=later)
    assert reminder.kind == "reminder" and "still over 100% of budget" in reminder.title
    assert BudgetEvaluator(config, store).evaluate(now=later + timedelta(minutes=5)) == []
    (second,) = BudgetEvaluator(config, store).evaluate(now=NOON + timedelta(hours=8, minutes=1))
    assert second.alert_id != reminder.alert_id


def test_cli_without_a_worker_reads_and_writes_directly(
    ledger_client: Client, chdb_path: Path, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    write(ledger_client, event(now - timedelta(minutes=1)))
    database = ledger_client.query("SELECT currentDatabase()").result_rows[0][0]
    config = tmp_path / "spendstream.toml"
    config.write_text(
        f'[clickhouse]\ndsn = "chdb://{chdb_path}"\ndatabase = "{database}"\n\n'
        '[[budgets]]\nname = "cli"\nscope = { team = "search" }\nlimit = "1000"\n'
        "thresholds = [50]\n"
    )
    silenced = run_cli(alerts_app, "silence", "cli", "--for", "30m", "-c", str(config))
    assert silenced.exit_code == 0 and "cli: silenced until" in silenced.output
    assert "cli" in Outbox(ledger_client).active_silences(now)
    unknown = run_cli(alerts_app, "silence", "nope", "-c", str(config))
    assert unknown.exit_code == 2 and "no budget named 'nope'" in unknown.output
    status = run_cli(budgets_app, "status", "-c", str(config), "-f", "json")
    spend = format_usd(cost(event(now)))
    assert status.exit_code == 0 and f'"spend": "{spend}"' in status.output
    assert run_cli(alerts_app, "unsilence", "cli", "-c", str(config)).exit_code == 0
    assert Outbox(ledger_client).active_silences(datetime.now(UTC)) == {}


def test_rerating_below_a_threshold_resolves_the_alert(ledger_client: Client) -> None:
    spent = event(NOON - timedelta(minutes=5))
    config = alerting(
        [
            {
                "name": "rr",
                "scope": {"team": "search"},
                "period": "day",
                "limit": str(cost(spent) * 2),
                "thresholds": [50],
                "forecast": False,
            }
        ]
    )
    write(ledger_client, spent)
    store = Outbox(ledger_client)
    (alert,) = BudgetEvaluator(config, store).evaluate(now=NOON)
    # A re-rating writes the same event with a newer price version and a lower cost, and
    # refreshes its rollups (as `spendstream reprice` does).
    cheaper = LedgerEntry(spent, PRICER.rate(spent.model_copy(update={"input_tokens": 1})))
    LedgerWriter(ledger_client, 2).write([cheaper])
    assert BudgetEvaluator(config, store).evaluate(now=NOON) == []
    (row,) = history(ledger_client)
    assert row["state"] == "resolved" and row["note"].startswith("spend back under 50%")
    assert isinstance(alert, Notification) and row["alert_id"] == alert.alert_id


def test_unsilence_lets_alerts_through(ledger_client: Client, tmp_path: Path) -> None:
    config = alerting(
        [{"name": "un", "scope": {"team": "search"}, "limit": "1", "forecast": False}]
    )
    store = Outbox(ledger_client)
    apply_silence(store, config, SilenceRequest(budget="un", duration="1h"), NOON)
    assert "un" in store.active_silences(NOON + timedelta(minutes=1))
    apply_silence(store, config, SilenceRequest(action="unsilence", budget="un"), NOON)
    assert store.active_silences(NOON + timedelta(minutes=1)) == {}
    with pytest.raises(KeyError, match="no budget named 'nope'"):
        apply_silence(store, config, SilenceRequest(budget="nope"), NOON)


class RecordingEvaluator:
    """Stands in for BudgetEvaluator: records which budgets each pass evaluated."""

    def __init__(self) -> None:
        self.calls: list[set[str] | None] = []
        self.alerting = alerting([])

    def evaluate(self, names: set[str] | None = None, now: Any = None) -> list[Notification]:
        self.calls.append(None if names is None else set(names))
        return []


def test_evaluation_loop_still_evaluates_everything_under_steady_traffic() -> None:
    evaluator = RecordingEvaluator()
    dispatcher_stub = type("D", (), {"wake_event": threading.Event()})()
    loop = EvaluationLoop(evaluator, 0.4, dispatcher_stub)  # type: ignore[arg-type]
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:  # a batch touching "a" every 50 ms
            loop.mark({"a"})
            time.sleep(0.05)
    finally:
        loop.stop()
        thread.join(5)
    full_passes = [c for c in evaluator.calls if c is None]
    assert evaluator.calls[0] is None and len(full_passes) >= 3
    assert {"a"} in evaluator.calls  # touched budgets are evaluated between full passes


def test_observer_marks_only_the_budgets_a_batch_touches() -> None:
    config = alerting(
        [
            {"name": "search", "scope": {"team": "search", "env": ["prod", "prod-*"]}, "limit": 1},
            {"name": "claude", "scope": {"model": "claude-*"}, "limit": 1},
            {"name": "all", "limit": 1},
        ]
    )
    marked: list[set[str]] = []
    loop = type("Loop", (), {"mark": lambda self, names: marked.append(names)})()
    observer = BudgetObserver(config.budgets, loop)  # type: ignore[arg-type]
    batch = [
        event(NOON, team="search", env="prod-eu"),
        event(NOON, team="search", env="dev"),
        event(NOON, team="ads", env="prod"),
    ]
    asyncio.run(observer.on_batch([LedgerEntry(e, PRICER.rate(e)) for e in batch]))
    assert marked == [{"search", "all"}]


def test_a_threshold_crossed_again_after_resolving_fires_once_more(ledger_client: Client) -> None:
    spent = event(NOON - timedelta(minutes=5))
    budget = {"name": "again", "scope": {"team": "search"}, "period": "day"}
    budget |= {"limit": str(cost(spent) * 2), "thresholds": [50], "forecast": False}
    config = alerting([budget | {"channels": ["oncall"]}], {"oncall": "slack://T0/B0/XXX"})
    write(ledger_client, spent)
    store = Outbox(ledger_client)
    evaluator = BudgetEvaluator(config, store)
    (first,) = evaluator.evaluate(now=NOON)
    cheaper = LedgerEntry(spent, PRICER.rate(spent.model_copy(update={"input_tokens": 1})))
    LedgerWriter(ledger_client, 2).write([cheaper])
    assert evaluator.evaluate(now=NOON) == []  # resolved, nothing new while under
    assert evaluator.evaluate(now=NOON + timedelta(minutes=1)) == []
    LedgerWriter(ledger_client, 3).write([LedgerEntry(spent, PRICER.rate(spent))])
    (second,) = evaluator.evaluate(now=NOON + timedelta(minutes=2))
    assert second.kind == "threshold" and second.alert_id != first.alert_id
    # While it stays over: nothing more, from this evaluator or a fresh one (a restart).
    assert evaluator.evaluate(now=NOON + timedelta(minutes=3)) == []
    assert BudgetEvaluator(config, store).evaluate(now=NOON + timedelta(minutes=4)) == []
    states = {row["alert_id"]: row["state"] for row in history(ledger_client)}
    assert states == {first.alert_id: "resolved", second.alert_id: "firing"}
    # One delivery per episode: the new one is paged, once.
    assert store.delivery_counts([first.alert_id, second.alert_id]) == {"pending": 2}
