"""Grafana provisioning (deploy/grafana): the files parse and wire the read-only ClickHouse
user, and every panel's SQL, with the data source's macros expanded as the plugin expands
them, runs on chDB and returns the same figures as the API's query functions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from clickhouse_connect.driver.client import Client

from spendstream.events import UsageEvent
from spendstream.notifications.outbox import Outbox
from spendstream.notifications.records import Notification
from spendstream.pricing import Rating
from spendstream.sinks.client import connect
from spendstream.sinks.queries import spend_report_sql, unpriced_report_sql
from tests.support.ledger_data import DAYS, START, fill_ledger, generate
from tests.support.ledger_template import copy_template

ROOT = Path(__file__).resolve().parents[1]
GRAFANA = ROOT / "deploy" / "grafana"
FROM, TO = START + timedelta(hours=5), START + timedelta(days=DAYS - 1, minutes=7)
INTERVAL_S = 3600


def expand(sql: str, start: datetime, end: datetime, interval_s: int) -> str:
    """The grafana-clickhouse-datasource macros (pkg/macros/macros.go) this board uses."""
    ms = lambda t: f"fromUnixTimestamp64Milli({int(t.timestamp() * 1000)})"  # noqa: E731
    s = lambda t: f"toDateTime({int(t.timestamp())})"  # noqa: E731
    sql = re.sub(
        r"\$__timeInterval\(([^)]+)\)",
        lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {interval_s} second)",
        sql,
    )
    sql = re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        lambda m: f"{m[1]} >= {s(start)} AND {m[1]} <= {s(end)}",
        sql,
    )
    for macro, value in (
        ("$__fromTime_ms", ms(start)),
        ("$__toTime_ms", ms(end)),
        ("$__fromTime", s(start)),
        ("$__toTime", s(end)),
    ):
        sql = sql.replace(macro, value)
    assert "$__" not in sql, f"a macro this test does not expand: {sql}"
    return sql


@pytest.fixture(scope="module")
def board() -> dict[str, Any]:
    return json.loads((GRAFANA / "dashboards" / "spendstream.json").read_text())


RATED: list[tuple[UsageEvent, Rating]] = []


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory, migrated_template: Path) -> Iterator[Client]:
    path = copy_template(migrated_template, tmp_path_factory.mktemp("grafana") / "ch")
    client = connect(f"chdb://{path}", "spendstream")
    RATED[:] = fill_ledger(client, generate(3000))
    yield client
    client.close()


def panel_rows(client: Client, board: dict[str, Any], title: str) -> list[dict[str, Any]]:
    panel = next(p for p in board["panels"] if p["title"] == title)
    result = client.query(expand(panel["targets"][0]["rawSql"], FROM, TO, INTERVAL_S))
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def api_rows(client: Client, sql_params: tuple[str, dict[str, Any]]) -> list[tuple[Any, ...]]:
    sql, params = sql_params
    return [tuple(r) for r in client.query(sql, parameters=params).result_rows]


def test_provisioning_parses_and_uses_the_reader(board: dict[str, Any]) -> None:
    source = yaml.safe_load((GRAFANA / "provisioning/datasources/clickhouse.yaml").read_text())
    (ds,) = source["datasources"]
    assert ds["type"] == "grafana-clickhouse-datasource"
    assert ds["jsonData"]["username"] == "spendstream_reader"
    assert ds["secureJsonData"]["password"] == "$SPENDSTREAM_READER_PASSWORD"
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/spendstream.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    assert "grafana-clickhouse-datasource" in grafana["environment"]["GF_PLUGINS_PREINSTALL"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    for panel in board["panels"]:
        (target,) = panel["targets"]
        assert target["datasource"]["uid"] == ds["uid"]
        assert target["rawSql"].lstrip().upper().startswith("SELECT")


@pytest.mark.storage
def test_every_panel_runs(ledger: Client, board: dict[str, Any]) -> None:
    for panel in board["panels"]:
        ledger.query(expand(panel["targets"][0]["rawSql"], FROM, TO, INTERVAL_S))


@pytest.mark.storage
def test_spend_panels_equal_the_api_queries(ledger: Client, board: dict[str, Any]) -> None:
    # Grafana's range is [from, to) here as in the API (the board avoids $__timeFilter's <=).
    by_team = api_rows(ledger, spend_report_sql(["team"], FROM, TO, limit=1000))
    total = sum((Decimal(r[1]) for r in by_team), Decimal(0))
    (stat,) = panel_rows(ledger, board, "Spend in range (USD)")
    assert stat["cost_usd"] == total > 0
    for dimension in ("team", "model"):
        expected = {
            r[0]: Decimal(r[1])
            for r in api_rows(ledger, spend_report_sql([dimension], FROM, TO, limit=1000))
        }
        series: dict[str, Decimal] = {}
        for row in panel_rows(ledger, board, f"Spend over time by {dimension}"):
            series[row[dimension]] = series.get(row[dimension], Decimal(0)) + row["cost_usd"]
        assert series == expected
    for dimension, title in (("user", "Top users"), ("feature", "Top features")):
        expected_rows = api_rows(ledger, spend_report_sql([dimension], FROM, TO, limit=20))
        shown = panel_rows(ledger, board, title)
        assert [(r[dimension], r["cost_usd"], r["events"]) for r in shown] == [
            (r[0], r[1], r[2]) for r in expected_rows
        ]


@pytest.mark.storage
def test_unpriced_and_cache_panels(ledger: Client, board: dict[str, Any]) -> None:
    unpriced = api_rows(ledger, unpriced_report_sql(FROM, TO))
    shown = panel_rows(ledger, board, "Unpriced events by model")
    assert sorted(
        (r["provider"], r["model"], r["unpriced_reason"], r["events"]) for r in shown
    ) == (sorted((r[0], r[1], r[2], r[3]) for r in unpriced))
    (count,) = panel_rows(ledger, board, "Unpriced events in range")
    assert count["unpriced_events"] == sum(r[3] for r in unpriced) > 0
    (savings,) = panel_rows(ledger, board, "Estimated cache savings (USD)")
    expected = Decimal(0)
    for event, rating in RATED:
        uncached = event.input_tokens - event.cache_read_tokens - event.cache_write_tokens
        if FROM <= event.event_time < TO and uncached > 0 and event.cache_read_tokens:
            rate = rating.cost_input / uncached
            expected += rate * event.cache_read_tokens - rating.cost_cache_read
    # ClickHouse divides Decimals at the dividend's scale (1e-18 USD per token): the sums
    # differ only in that truncation.
    assert expected > 0 and abs(savings["cache_savings_usd"] - expected) < Decimal("1e-9")


@pytest.mark.storage
def test_budget_panel_shows_each_budget_at_its_last_alert(
    ledger: Client, board: dict[str, Any]
) -> None:
    store, now = Outbox(ledger), datetime.now(UTC)
    for index, (percent, period_end) in enumerate(
        (
            (50, now + timedelta(days=3)),
            (80, now + timedelta(days=3)),
            (120, now - timedelta(days=1)),
        )
    ):
        moment = now + timedelta(seconds=index)  # the past period's alert is the newest row
        alert = Notification(
            alert_id=f"a{index}",
            budget="search-month",
            kind="threshold",
            threshold=percent,
            period_start=period_end - timedelta(days=30),
            period_end=period_end,
            spend=Decimal(percent),
            limit_usd=Decimal(100),
            percent=Decimal(percent),
            title="t",
            body="b",
            created_at=moment,
            updated_at=moment,
            version=index + 1,
        )
        store.create(alert, [])
    (row,) = panel_rows(ledger, board, "Budgets at their last alert (current periods)")
    assert (row["budget"], row["percent"], row["spend"]) == ("search-month", 80, 80)
