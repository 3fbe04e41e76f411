"""Unit-bearing events through the real worker (subprocess, Tansu, chDB): exact totals per unit
under re-sends and a SIGKILL, and a budget on vector queries paging the Slack stand-in.
Expected costs come from the hand price table in ``tests/support/units.py``."""

from __future__ import annotations

import json
import random
import signal
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from spendstream.cli.root import app
from spendstream.embedded import TansuBroker
from spendstream.events import UsageEvent, derived_event_id
from spendstream.money import format_usd
from tests.support.slack_server import SlackServer
from tests.support.traffic import publish
from tests.support.units import VECTOR_OVERRIDE_TOML, by_driver, hand_cost, total, unit_events
from tests.support.worker import WorkerProcess, decimal_rows, wait_until, write_config
from tests.test_alerts_engine import run_cli
from tests.test_units_ledger import ALL_ROLLUPS

pytestmark = pytest.mark.integration

D = Decimal
ATTO = D("1e-18")


def quantized(values: dict[str, Decimal]) -> dict[str, Decimal]:
    return {key: value.quantize(ATTO) for key, value in values.items()}


def driver_rows(worker: WorkerProcess, table: str) -> dict[str, Decimal]:
    """Cost per unit (from the unit_costs maps) plus token cost, as the table sums them."""
    rows = worker.query(
        f"SELECT unit, sum(cost) FROM (SELECT arrayJoin(mapKeys(m)) AS unit, m[unit] AS cost "
        f"FROM (SELECT sumMap(unit_costs) AS m FROM {table} FINAL)) GROUP BY unit "
        f"UNION ALL SELECT 'tokens', sum(cost_total - cost_units) FROM {table} FINAL"
    )
    return {key: value for key, value in decimal_rows(rows).items() if value}


def test_unit_events_are_exact_through_resends_and_a_sigkill(
    tmp_path: Path, broker: TansuBroker, chdb_dsn: str
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    events = unit_events(4_000, now - timedelta(hours=2), 100 * 60, seed=8)
    rng = random.Random(2)
    # One in ten without event_id: its id is derived from the content, units included.
    for index in range(0, len(events), 10):
        events[index] = events[index].model_copy(
            update={"event_id": derived_event_id(events[index])}
        )
    payloads = [
        event.model_dump_json(exclude={"event_id"}).encode()
        if index % 10 == 0
        else event.to_json_bytes()
        for index, event in enumerate(events)
    ]
    for index in rng.sample(range(len(events)), 400):  # 10 % re-sent, byte for byte
        payloads.insert(rng.randrange(index + 1, len(payloads) + 1), payloads[index])
    config = write_config(
        tmp_path / "spendstream.toml",
        broker.bootstrap_servers,
        chdb_dsn,
        VECTOR_OVERRIDE_TOML,
    )
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        half = len(payloads) // 2
        publish(broker.bootstrap_servers, payloads[:half])
        wait_until(lambda: int(worker.scalar("SELECT count() FROM ledger")) >= 500, 60, "500 rows")
        worker.stop(signal.SIGKILL)  # mid-stream
        worker = WorkerProcess(config, tmp_path / "worker-2.log").start()
        publish(broker.bootstrap_servers, payloads[half:])
        worker.wait_for_ledger_count(len(events))

        expected = quantized(by_driver(events))
        assert driver_rows(worker, "ledger") == expected
        for table in ALL_ROLLUPS:
            assert driver_rows(worker, table) == expected, table
        by_team = decimal_rows(
            worker.query("SELECT team, sum(cost_total) FROM ledger FINAL GROUP BY team")
        )
        teams: dict[str, Decimal] = {}
        for event in events:
            teams[event.tag("team")] = teams.get(event.tag("team"), D(0)) + total([event])
        assert by_team == teams
        quantities = worker.query(
            "SELECT sumMap(unit_quantities) FROM ledger FINAL WHERE priced"
        ).rows[0][0]
        audio = sum((e.units.get("audio_seconds", D(0)) for e in events), D(0))
        assert D(str(quantities["audio_seconds"])) == audio  # fractional seconds, exact
        unpriced = worker.query(
            "SELECT event_id, unpriced_reason, cost_total FROM ledger FINAL WHERE NOT priced"
        ).rows
        assert len(unpriced) == 1 and "'custom_widgets'" in unpriced[0][1]
        assert D(str(unpriced[0][2])) == 0
        # The same per-driver totals through the CLI, which reads via the worker's HTTP API.
        window = ["--since", (now - timedelta(hours=3)).isoformat(), "--until", now.isoformat()]
        reported = run_cli(app, "report", "--by", "unit", *window, "-f", "json", "-c", str(config))
        assert reported.exit_code == 0, reported.output
        lines = [json.loads(line) for line in reported.stdout.splitlines() if line[:1] == "{"]
        assert {line["unit"]: D(line["cost_usd"]) for line in lines if D(line["cost_usd"])} == (
            expected
        )
    finally:
        worker.stop()


def vector_event(index: int, queries: int) -> UsageEvent:
    return UsageEvent(
        event_id=f"vq-{index}",
        provider="self-hosted",
        model="qdrant",
        operation="other",
        units={"vector_queries": queries},
        tags={"team": "rag", "app": "retriever"},
    )


def test_budget_on_vector_queries_fires_on_slack(
    tmp_path: Path, broker: TansuBroker, slack: SlackServer, chdb_dsn: str
) -> None:
    # Token spend of the team, far above the vector budget's limit, must not count toward it.
    chat = UsageEvent(
        event_id="chat-1",
        provider="anthropic",
        model="claude-sonnet-4-5",
        input_tokens=1_000_000,
        output_tokens=10_000,
        tags={"team": "rag", "app": "retriever"},
    )
    vectors = [vector_event(i, 25_000) for i in range(3)]  # $10 each at $0.40 per 1,000
    limit = D(25)
    config = write_config(
        tmp_path / "spendstream.toml",
        broker.bootstrap_servers,
        chdb_dsn,
        VECTOR_OVERRIDE_TOML
        + f"""
[alerts]
slack_webhook_base = "{slack.base_url}"
group_wait = "0.2s"

[alerts.channels]
oncall-slack = "slack://T000/B000/XXXXXXXX"

[[budgets]]
name = "rag-all"
scope = {{ team = "rag" }}
period = "day"
limit = "1"
thresholds = [100]
forecast = false
channels = ["oncall-slack"]

[[budgets]]
name = "rag-vectors"
scope = {{ team = "rag" }}
unit = "vector_queries"
period = "day"
limit = "{limit}"
thresholds = [50, 100]
forecast = false
channels = ["oncall-slack"]
""",
    )
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        publish(broker.bootstrap_servers, [chat.to_json_bytes()])
        wait_until(lambda: len(slack.received) >= 1, 60, "the rag-all alert")
        # Evaluated in the same pass as rag-all: $3.15 of tokens is not vector spend.
        assert all("rag-vectors" not in text for text in slack.texts())
        publish(broker.bootstrap_servers, [vectors[0].to_json_bytes()])  # $10: under 50 %
        publish(broker.bootstrap_servers, [v.to_json_bytes() for v in vectors[1:]])  # $30
        wait_until(
            lambda: any("rag-vectors: 100%" in text for text in slack.texts()),
            60,
            "the rag-vectors alert",
        )
        spend = sum((hand_cost(v)["vector_queries"] for v in vectors), D(0))
        assert spend == D(30)
        text = next(t for t in slack.texts() if "rag-vectors: 100%" in t)
        spent = f"Spend: {format_usd(spend)} of {format_usd(limit)} limit (120.00%)"
        assert f"{spent}, vector_queries only" in text
        alerts = worker.query(
            "SELECT budget, threshold FROM alerts FINAL ORDER BY budget, threshold"
        ).rows
        assert [tuple(row) for row in alerts] == [
            ("rag-all", 100),
            ("rag-vectors", 50),
            ("rag-vectors", 100),
        ]
    finally:
        worker.stop()
