"""Anomaly episodes on a real chDB ledger: one episode and one notice per anomaly, opened once
and resolved once, across a restart and with three detectors at once; the notice carries
Explain's drivers; migration 1000 leaves a previous release's tables untouched."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clickhouse_connect.driver.client import Client

from spendstream.anomalies import AnomalyDetector, AnomalyRule
from spendstream.events import UsageEvent
from spendstream.notifications.outbox import Outbox
from spendstream.sinks import migrations as ledger_schema
from spendstream.sinks.client import connect
from spendstream.worker.schema import MIGRATIONS, migrate
from tests.support import ledger_data

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
    assert ledger_client.query(
        "SELECT state FROM alerts FINAL WHERE budget = 'per-team'"
    ).result_rows == [("resolved",)]
    assert count(ledger_client, "SELECT count() FROM alerts FINAL") == 1
    assert count(ledger_client, "SELECT count() FROM alert_deliveries FINAL") == 2


def test_three_detectors_at_once_open_one_episode(chdb_path: Path) -> None:
    clients = [connect(f"chdb://{chdb_path}", "spendstream") for _ in range(3)]
    migrate(clients[0])
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


def test_the_anomaly_migration_leaves_the_previous_release_untouched(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'old'}", "spendstream")
    ledger_schema.migrate(client, [m for m in MIGRATIONS if m.version != 1000])
    ledger_data.fill_ledger(client, ledger_data.generate(2_000, seed=4))
    totals = (
        "SELECT (SELECT sum(cost_total) FROM ledger FINAL), (SELECT count() FROM ledger FINAL), "
        "(SELECT sum(cost_total) FROM rollup_hour FINAL), (SELECT count() FROM alerts)"
    )
    tables = "SELECT name, create_table_query FROM system.tables WHERE database = 'spendstream'"
    before, schema = client.query(totals).result_rows[0], client.query(tables).result_rows
    assert migrate(client) == [1000]
    assert client.query(totals).result_rows[0] == before
    after = dict(client.query(tables).result_rows)
    assert {name: after[name] for name, _ in schema} == dict(schema)
    assert set(after) - {name for name, _ in schema} == {"anomaly_episodes", "anomaly_actions"}
    client.close()
