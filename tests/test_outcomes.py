"""Outcomes: cost per outcome against Decimal figures computed here (real chDB), and
``recorder.outcome`` end to end through a real worker (stored once, bad lines dead-lettered,
the insight read through the worker's /sql)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from kafka import KafkaProducer

from spendstream.config import InsightsSettings
from spendstream.embedded import TansuBroker
from spendstream.events import OutcomeEvent, UsageEvent
from spendstream.insights import Context, Window, run_insight
from spendstream.insights.outcomes import SPEND_SQL, OutcomeStore
from spendstream.pricing import default_pricer
from spendstream.producers import Recorder
from spendstream.sinks.access import ClientReader, Reader, WorkerReader
from spendstream.sinks.entry import KafkaOrigin, OutcomeEntry
from tests.support.insight_data import END, START, generate
from tests.support.ledger_data import fill_ledger
from tests.support.traffic import read_dead_letters
from tests.support.worker import WorkerProcess, wait_until

pytestmark = pytest.mark.integration
ATTO = Decimal("1e-18")


def outcomes_for(events: list[UsageEvent], seed: int = 3) -> list[OutcomeEvent]:
    rng = random.Random(seed)
    out = []
    for event in events[::40]:
        if event.tag("feature") in ("classify", "draft"):
            moment = event.event_time + timedelta(seconds=1)
            tags = {"feature": event.tag("feature"), "team": event.tag("team")}
            value = Decimal(rng.randrange(1, 5)) if rng.random() < 0.7 else Decimal("12.5")
            out.append(OutcomeEvent(name="resolved", event_time=moment, value=value, tags=tags))
    return out


def insight(reader: Reader, **window: Any) -> list[dict[str, Any]]:
    context = Context(reader, default_pricer(), InsightsSettings(), Window(START, END, **window))
    result = run_insight("outcomes", context)
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def test_cost_per_outcome_per_day_feature_and_model(ledger_client: Client) -> None:
    events = generate()
    rated = fill_ledger(ledger_client, events)
    outcomes = outcomes_for(events)
    store = OutcomeStore(ledger_client)
    store.insert([OutcomeEntry(o, KafkaOrigin(offset=i)) for i, o in enumerate(outcomes)])
    replay = [OutcomeEntry(o, KafkaOrigin(offset=i)) for i, o in enumerate(outcomes[:50])]
    store.insert(replay)  # a replayed batch
    spend: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for event, rating in rated:
        day = event.event_time.date().isoformat()
        spend[(day, event.tag("feature"))][event.model] += rating.cost_total
    value: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for outcome in outcomes:
        key = (outcome.event_time.date().isoformat(), outcome.tags["feature"])
        value[key][0] += 1
        value[key][1] += outcome.value
    expected = []
    for (day, feature), (count, total_value) in sorted(value.items()):
        models = spend.get((day, feature), {})
        total = sum(models.values(), Decimal(0))
        pairs = [("*", total), *sorted(models.items())]
        for model, usd in pairs:
            per = (usd / total_value).quantize(ATTO, ROUND_HALF_EVEN)
            expected.append([day, feature, "resolved", count, total_value, model, usd, per])
    rows = insight(ClientReader(ledger_client))
    assert [list(row.values()) for row in rows] == expected
    assert len({row["day"] for row in rows}) > 10
    scoped = insight(ClientReader(ledger_client), scope=(("feature", "draft"),))
    assert {row["feature"] for row in scoped} == {"draft"} and scoped


def test_outcomes_end_to_end_through_a_real_worker(
    tmp_path: Path, broker: TansuBroker, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    with Recorder(
        bootstrap_servers=broker.bootstrap_servers, spool_dir=str(tmp_path / "spool")
    ) as recorder:
        recorder.record(
            provider="openai",
            model="gpt-4o",
            input_tokens=1000,
            output_tokens=100,
            tags={"team": "search", "feature": "qa"},
        )
        ids = [recorder.outcome("ticket_resolved", team="search", feature="qa") for _ in range(3)]
        ids.append(recorder.outcome("conversion", value="19.90", team="search", feature="qa"))
        assert recorder.outcome("Not A Name") is None  # invalid: dropped, never raised
        assert recorder.flush(30)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    producer.send("spendstream.outcomes.v1", b'{"schema": "outcome/v1", "name": "x", "value": -1}')
    producer.flush()
    producer.close()
    wait_until(
        lambda: int(worker.scalar("SELECT count() FROM outcomes FINAL")) >= 4, 120, "4 outcomes"
    )
    worker.wait_for_ledger_count(1)
    stored = worker.query("SELECT event_id, name, value, feature FROM outcomes FINAL")
    assert None not in ids
    assert sorted(row[0] for row in stored.rows) == sorted(str(i) for i in ids)
    assert sum(Decimal(str(row[2])) for row in stored.rows) == Decimal("22.90")
    letters = read_dead_letters(broker.bootstrap_servers)
    assert [letter.source_topic for letter in letters] == ["spendstream.outcomes.v1"]
    assert "value" in letters[0].reason
    cost = (
        default_pricer()
        .rate(UsageEvent(provider="openai", model="gpt-4o", input_tokens=1000, output_tokens=100))
        .cost_total
    )
    reader = WorkerReader(worker.api())
    rows = run_insight(
        "outcomes",
        Context(
            reader,
            default_pricer(),
            InsightsSettings(),
            Window(START.replace(year=2020), END.replace(year=2100)),
        ),
    ).rows
    by_name = {row[2]: row for row in rows if row[5] == "*"}
    assert by_name["ticket_resolved"][6] == cost
    assert by_name["ticket_resolved"][7] == (cost / 3).quantize(ATTO, ROUND_HALF_EVEN)
    assert by_name["conversion"][7] == (cost / Decimal("19.90")).quantize(ATTO, ROUND_HALF_EVEN)


@pytest.mark.parametrize(
    ("cut", "scope", "teams"),
    [
        ((timedelta(0), timedelta(0)), (), None),
        ((timedelta(hours=5, minutes=17), timedelta(days=-1, hours=-2, minutes=-41)), (), None),
        ((timedelta(hours=1), timedelta(days=-3)), (("feature", "draft"),), None),
        ((timedelta(minutes=30), timedelta(0)), (("app", "web"),), ["search"]),
    ],
)
def test_spend_from_rollups_equals_the_ledger(
    ledger_client: Client,
    cut: tuple[timedelta, timedelta],
    scope: tuple[tuple[str, str], ...],
    teams: list[str] | None,
) -> None:
    fill_ledger(ledger_client, generate())
    team_sql, team_params = "1", {}
    if teams is not None:
        team_sql, team_params = "team IN {scope_teams:Array(String)}", {"scope_teams": teams}
    window = Window(START + cut[0], END + cut[1], scope, team_sql, team_params)
    context = Context(ClientReader(ledger_client), default_pricer(), InsightsSettings(), window)
    from_rollups = context.rollup_rows(("feature", "model"), "sum(m_cost_total) AS spend")
    assert from_rollups is not None

    def key(row: dict[str, Any]) -> tuple[str, ...]:
        return tuple(str(row[name]) for name in ("day", "feature", "model", "spend"))

    from_ledger = context.rows(SPEND_SQL)
    assert sorted(map(key, from_rollups)) == sorted(map(key, from_ledger))
    assert from_ledger  # every case holds spend


def test_spend_scoped_on_a_key_no_rollup_has_reads_the_ledger(ledger_client: Client) -> None:
    for scope in ((("operation", "chat"),), (("project", "x"),)):
        window = Window(START, END, scope)
        context = Context(ClientReader(ledger_client), default_pricer(), InsightsSettings(), window)
        assert context.rollup_rows(("feature",), "sum(m_cost_total) AS spend") is None
