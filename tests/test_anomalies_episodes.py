"""Anomaly episodes on a real chDB ledger: one episode and one notice per anomaly, opened once
and resolved once, across a restart and with three detectors at once; the notice carries
Explain's drivers; migration 1000 leaves a previous release's tables untouched."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.alerts.silences import SilenceRequest
from spendstream.anomalies import AnomalyDetector, AnomalyRule, Episode, store
from spendstream.anomalies.schema import EPISODE_COLUMNS
from spendstream.anomalies.silences import silence_rule
from spendstream.auth.roles import Principal, Role
from spendstream.errors import ForbiddenError, NotFoundError
from spendstream.events import UsageEvent
from spendstream.notifications.outbox import Outbox
from spendstream.periods import format_time
from spendstream.sinks import migrations as ledger_schema
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from spendstream.worker.schema import MIGRATIONS, migrate
from tests.support import ledger_data
from tests.support.ledger_template import copy_template

HOUR = timedelta(hours=1)
START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
SPIKE = START + timedelta(weeks=3, hours=10)
SETTLED = timedelta(minutes=3)  # past the rule's settle (2 min)
RULE = AnomalyRule.model_validate(
    {
        "name": "per-team",
        "group_by": ["team"],
        "min_delta_usd": "0.2",
        "channels": ["ops", "mail"],
    }
)


def traffic() -> list[UsageEvent]:
    """Three weeks and a few hours of steady hourly traffic of two teams; at SPIKE, support
    sends 12x its usual requests."""
    rng = random.Random(3)
    events = []
    hour = START
    while hour < SPIKE + 5 * HOUR:
        for team in ("support", "search"):
            count = rng.randint(4, 6) * (12 if (hour == SPIKE and team == "support") else 1)
            for i in range(count):
                events.append(
                    UsageEvent(
                        event_time=hour + timedelta(seconds=60 * i + 1),
                        provider="openai",
                        model="gpt-4o-mini",
                        input_tokens=100_000,
                        output_tokens=2_000,
                        tags={"team": team, "feature": "reply", "user": f"u{i % 3}"},
                    )
                )
        hour += HOUR
    return events


ANOMALY_VERSIONS = (1000, 1002, 1003)


def count(client: Client, sql: str) -> int:
    return int(client.query(sql).result_rows[0][0])


def detector(client: Client) -> AnomalyDetector:
    return AnomalyDetector([RULE], Outbox(client))


def test_one_episode_opened_and_resolved_once_across_a_restart(ledger_client: Client) -> None:
    ledger_data.fill_ledger(ledger_client, traffic())
    first = detector(ledger_client)
    assert first.run(SPIKE + HOUR + SETTLED)  # evaluates the spike hour: a notice
    assert not first.run(SPIKE + HOUR + SETTLED)  # nothing new to evaluate
    assert not detector(ledger_client).run(SPIKE + HOUR + SETTLED)  # a restart: same hour
    episodes = ledger_client.query(
        "SELECT group_values, ended_at, drivers, observed_usd > expected_usd * 5 "
        "FROM anomaly_episodes FINAL"
    ).result_rows
    assert len(episodes) == 1
    group, ended, drivers, large = episodes[0]
    assert (group, ended, large) == (["support"], None, True)
    assert drivers and "requests" in drivers[0]  # Explain: the volume grew
    alerts = ledger_client.query(
        "SELECT kind, state, body FROM alerts FINAL WHERE budget = 'per-team'"
    ).result_rows
    assert [(kind, state) for kind, state, _ in alerts] == [("anomaly", "firing")]
    assert "Why (vs the same hour a week before):" in alerts[0][2]
    assert "1. " in alerts[0][2]
    assert count(ledger_client, "SELECT count() FROM alert_deliveries FINAL") == 2

    # One quiet hour: still open. Two: ended once, its alert resolved once.
    restarted = detector(ledger_client)
    assert not restarted.run(SPIKE + 2 * HOUR + SETTLED)
    assert (
        count(ledger_client, "SELECT count() FROM anomaly_episodes FINAL WHERE ended_at IS NULL")
        == 1
    )
    restarted.run(SPIKE + 3 * HOUR + SETTLED)
    later = detector(ledger_client)
    later.run(SPIKE + 4 * HOUR + SETTLED)
    later.run(SPIKE + 5 * HOUR + SETTLED)
    assert count(ledger_client, "SELECT count() FROM anomaly_episodes FINAL") == 1
    assert (
        count(
            ledger_client, "SELECT count() FROM anomaly_episodes FINAL WHERE ended_at IS NOT NULL"
        )
        == 1
    )
    # The opening's alert resolved, and one message that the episode is over (two deliveries),
    # not repeated by another restart.
    detector(ledger_client).run(SPIKE + 5 * HOUR + SETTLED)
    rows = ledger_client.query(
        "SELECT state, title, body FROM alerts FINAL WHERE budget = 'per-team' ORDER BY title"
    ).result_rows
    assert [(state, title) for state, title, _ in rows] == [
        ("resolved", "[spendstream] per-team: spend anomaly in team=support"),
        ("resolved", "[spendstream] per-team: spend anomaly over in team=support"),
    ]
    assert "back within its baseline" in rows[1][2]
    assert count(ledger_client, "SELECT count() FROM alerts FINAL") == 2
    assert count(ledger_client, "SELECT count() FROM alert_deliveries FINAL") == 4
    assert (
        count(ledger_client, "SELECT count() FROM alert_deliveries FINAL WHERE status='pending'")
        == 4
    )


def test_a_silenced_rule_records_its_notices_and_sends_none(ledger_client: Client) -> None:
    ledger_data.fill_ledger(ledger_client, traffic())
    rules = [RULE]
    viewer, other = Principal("vic", Role.VIEWER), Principal("ola", Role.OPERATOR, frozenset({"x"}))
    request = SilenceRequest(budget="per-team", duration="6h", reason="load test")  # type: ignore[arg-type]
    with pytest.raises(ForbiddenError):
        silence_rule(ledger_client, rules, viewer, request, SPIKE)
    with pytest.raises(NotFoundError):  # a rule of every team is outside a team's token
        silence_rule(ledger_client, rules, other, request, SPIKE)
    with pytest.raises(NotFoundError):
        silence_rule(ledger_client, rules, Principal("oz", Role.OPERATOR), request.model_copy(
            update={"budget": "nope"}), SPIKE)  # fmt: skip
    done = silence_rule(ledger_client, rules, Principal("oz", Role.OPERATOR), request, SPIKE)
    assert done.until == SPIKE + 6 * HOUR and done.created_by == "oz"
    assert detector(ledger_client).run(SPIKE + HOUR + SETTLED)
    assert ledger_client.query("SELECT state, note FROM alerts FINAL").result_rows == [
        ("silenced", f"silenced until {format_time(SPIKE + 6 * HOUR)} by oz")
    ]
    assert ledger_client.query(
        "SELECT DISTINCT status FROM alert_deliveries FINAL"
    ).result_rows == [("silenced",)]
    unsilence = SilenceRequest(action="unsilence", budget="per-team", reason="done")
    silence_rule(ledger_client, rules, Principal("ada", Role.ADMIN), unsilence, SPIKE + HOUR)
    audit = ledger_client.query(
        "SELECT action, actor, role, reason FROM anomaly_rule_actions ORDER BY at"
    ).result_rows
    assert audit == [
        ("silence", "oz", "operator", "load test"),
        ("unsilence", "ada", "admin", "done"),
    ]


def test_three_detectors_at_once_open_one_episode(chdb_path: Path, migrated_template: Path) -> None:
    copy_template(migrated_template, chdb_path)
    clients = [connect(f"chdb://{chdb_path}", "spendstream") for _ in range(3)]
    ledger_data.fill_ledger(clients[0], traffic())
    detectors = [detector(c) for c in clients]
    barrier = threading.Barrier(3)

    def run(d: AnomalyDetector) -> None:
        barrier.wait()
        d.run(SPIKE + HOUR + SETTLED)

    threads = [threading.Thread(target=run, args=(d,)) for d in detectors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client = clients[0]
    assert count(client, "SELECT count() FROM anomaly_episodes FINAL") == 1
    assert count(client, "SELECT count() FROM alerts FINAL WHERE kind = 'anomaly'") == 1
    assert count(client, "SELECT count() FROM alert_deliveries FINAL") == 2
    for c in clients:
        c.close()


@pytest.mark.storage
def test_the_anomaly_migration_leaves_the_previous_release_untouched(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'old'}", "spendstream")
    ledger_schema.migrate(client, [m for m in MIGRATIONS if m.version not in ANOMALY_VERSIONS])
    ledger_data.fill_ledger(client, ledger_data.generate(2_000, seed=4))
    totals = (
        "SELECT (SELECT sum(cost_total) FROM ledger FINAL), (SELECT count() FROM ledger FINAL), "
        "(SELECT sum(cost_total) FROM rollup_hour FINAL), (SELECT count() FROM alerts)"
    )
    tables = "SELECT name, create_table_query FROM system.tables WHERE database = 'spendstream'"
    before, schema = client.query(totals).result_rows[0], client.query(tables).result_rows
    assert migrate(client) == list(ANOMALY_VERSIONS)
    assert client.query(totals).result_rows[0] == before
    after = dict(client.query(tables).result_rows)
    assert {name: after[name] for name, _ in schema} == dict(schema)
    assert set(after) - {name for name, _ in schema} == {
        "anomaly_episodes",
        "anomaly_actions",
        "anomaly_rule_actions",
    }
    client.close()


@pytest.mark.storage
def test_episodes_of_the_previous_release_read_as_spend_episodes(tmp_path: Path) -> None:
    """Migration 1002 on anomaly tables written by release 1000: the episodes read back
    unchanged, as opened by ``spend``."""
    client = connect(f"chdb://{tmp_path / 'old'}", "spendstream")
    ledger_schema.migrate(client, [m for m in MIGRATIONS if m.version not in (1002, 1003)])
    ledger_data.fill_ledger(client, traffic())
    old = Episode(
        "e1", "per-team", (("team", "support"),), ("support",), SPIKE, SPIKE, None,
        Decimal(1), Decimal(9), Decimal(8), "seasonal", ("requests x9",), SPIKE, 1,
    )  # fmt: skip
    client.insert(
        "anomaly_episodes", [store.episode_row(old)[:-1]], column_names=EPISODE_COLUMNS[:-1]
    )
    assert migrate(client) == [1002, 1003]
    assert store.read_episodes(ClientReader(client)) == [old]
    assert old.signal == "spend"
    client.close()
