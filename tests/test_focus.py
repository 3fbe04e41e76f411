"""FOCUS export on real chDB: rows per day x SKU x tag set, exact totals, CSV and Parquet."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import typer
from clickhouse_connect.driver.client import Client
from typer.testing import CliRunner

from spendstream.cli.ledger import audit_app, export_app, reprice
from spendstream.config import ClickHouseSettings, Settings
from spendstream.events import UsageEvent, decimal_text
from spendstream.sinks.access import DirectReader
from spendstream.sinks.client import connect
from spendstream.sinks.focus import COLUMN_NAMES, export_focus, ledger_total, month_bounds
from spendstream.worker.schema import migrate
from tests.support import ledger_data as shared
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration

# Fixtures shared with the audit tests.
fill_ledger = shared.fill_ledger
generate = shared.generate
write_config = shared.write_config

MONTH = "2026-10"
# Late in the month, so some events cross into November and must be left out.
MONTH_END_START = datetime(2026, 10, 29, tzinfo=UTC)


def expected_groups(events: list[UsageEvent]) -> dict[tuple[str, str, str], list[UsageEvent]]:
    """Events of October keyed by (charge day, SKU, tags JSON)."""
    start, end = month_bounds(MONTH)
    groups: dict[tuple[str, str, str], list[UsageEvent]] = defaultdict(list)
    for event in events:
        if start <= event.event_time < end:
            key = (
                event.event_time.strftime("%Y-%m-%dT00:00:00Z"),
                f"{event.provider}/{event.model}",
                json.dumps(event.tags, sort_keys=True, separators=(",", ":")),
            )
            groups[key].append(event)
    return groups


def test_focus_export_csv_and_parquet_match_the_ledger(
    ledger_client: Client, tmp_path: Path, chdb_path: Path
) -> None:
    events = generate(2_000, seed=5, start=MONTH_END_START)
    # Same tags in another insertion order: still one tag set.
    reordered = UsageEvent(
        event_time=MONTH_END_START,
        provider="openai",
        model="gpt-4o",
        input_tokens=100,
        tags=dict(reversed(list(events[1].tags.items()))),
    )
    rated = dict(
        (event.event_id, rating)
        for event, rating in fill_ledger(ledger_client, [*events, reordered])
    )
    groups = expected_groups([*events, reordered])
    assert any(event.event_time >= month_bounds(MONTH)[1] for event in events)

    settings = Settings(clickhouse=ClickHouseSettings(dsn=f"chdb://{chdb_path}"))
    reader = DirectReader(settings)
    try:
        rows = export_focus(reader, MONTH, tmp_path / "focus.csv", "csv")
        export_focus(reader, MONTH, tmp_path / "focus.parquet", "parquet")
        total = ledger_total(reader, MONTH)
    finally:
        reader.client.close()

    expected_total = sum(
        (rated[event.event_id].cost_total for items in groups.values() for event in items),
        Decimal(0),
    )
    assert total == expected_total
    assert sum((row["BilledCost"] for row in rows), Decimal(0)) == total
    assert len(rows) == len(groups)

    with (tmp_path / "focus.csv").open(newline="") as handle:
        from_csv = list(csv.DictReader(handle))
    assert tuple(from_csv[0]) == COLUMN_NAMES
    table = pq.read_table(tmp_path / "focus.parquet").to_pylist()
    assert len(from_csv) == len(table) == len(groups)
    assert sum((Decimal(row["BilledCost"]) for row in from_csv), Decimal(0)) == expected_total
    assert sum((row["BilledCost"] for row in table), Decimal(0)) == expected_total

    for row, stored in zip(from_csv, table, strict=True):
        key = (row["ChargePeriodStart"], row["SkuId"], row["Tags"])
        items = groups[key]
        cost = sum((rated[event.event_id].cost_total for event in items), Decimal(0))
        tokens = sum(event.input_tokens + event.output_tokens for event in items)
        assert Decimal(row["BilledCost"]) == Decimal(row["EffectiveCost"]) == cost, key
        assert stored["BilledCost"] == cost
        assert int(row["ConsumedQuantity"]) == int(row["PricingQuantity"]) == tokens
        assert int(row["x_CacheReadTokens"]) == sum(e.cache_read_tokens for e in items)
        assert int(row["x_Events"]) == stored["x_Events"] == len(items)
        assert (row["ChargeCategory"], row["ServiceCategory"], row["ConsumedUnit"]) == (
            "Usage",
            "AI and Machine Learning",
            "Tokens",
        )
        assert row["PublisherName"] == items[0].provider
        assert row["BillingCurrency"] == "USD"
        period = datetime.fromisoformat(row["ChargePeriodStart"])
        assert stored["ChargePeriodStart"] == period
        assert stored["ChargePeriodEnd"] == period + timedelta(days=1)
        assert json.loads(stored["Tags"]) == items[0].tags


def test_focus_cli_writes_the_file_and_checks_the_total(
    ledger_client: Client, tmp_path: Path, chdb_path: Path
) -> None:
    rated = fill_ledger(ledger_client, generate(300, seed=8))
    app = typer.Typer()
    app.add_typer(export_app, name="export")
    config = str(write_config(tmp_path, chdb_path))
    out = tmp_path / "oct.parquet"
    result = CliRunner().invoke(
        app, ["export", "focus", "--month", MONTH, "--out", str(out), "-f", "parquet", "-c", config]
    )
    assert result.exit_code == 0, result.output
    total = sum((rating.cost_total for _, rating in rated), Decimal(0))
    assert sum((row["BilledCost"] for row in pq.read_table(out).to_pylist()), Decimal(0)) == total
    assert f"ledger total {decimal_text(total)} USD" in result.output

    bad = CliRunner().invoke(
        app, ["export", "focus", "--month", "2026-13", "--out", str(out), "-c", config]
    )
    assert bad.exit_code != 0
    assert "YYYY-MM" in bad.output


def test_cli_reads_through_a_running_worker_and_reprice_refuses(
    chdb_dsn: str,
    worker_config: Path,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    client = connect(chdb_dsn, "spendstream")
    migrate(client)
    rated = fill_ledger(client, generate(300, seed=9))
    client.close()  # the worker process needs the chDB directory
    total = sum((rating.cost_total for _, rating in rated), Decimal(0))
    start_worker()
    app = typer.Typer()
    app.add_typer(export_app, name="export")
    app.add_typer(audit_app, name="audit")
    app.command()(reprice)
    config = ["-c", str(worker_config)]
    out = tmp_path / "oct.csv"

    exported = CliRunner().invoke(
        app, ["export", "focus", "--month", MONTH, "--out", str(out), *config]
    )
    assert exported.exit_code == 0, exported.output
    with out.open(newline="") as handle:
        assert sum((Decimal(row["BilledCost"]) for row in csv.DictReader(handle)), Decimal(0)) == (
            total
        )

    window = ["--since", "2026-10-01", "--until", "2026-11-01"]
    audited = CliRunner().invoke(
        app, ["audit", "run", "cost_per_model", *window, "-f", "json", *config]
    )
    assert audited.exit_code == 0, audited.output
    lines = [json.loads(line) for line in audited.output.splitlines()]
    assert sum((Decimal(line["cost_usd"]) for line in lines), Decimal(0)) == total

    coverage = CliRunner().invoke(
        app, ["audit", "run", "tag_coverage", *window, "-r", "team", "-f", "json", *config]
    )
    assert coverage.exit_code == 0, coverage.output
    team = json.loads(coverage.output)
    assert (team["tag"], team["events"]) == ("team", len(rated))
    assert int(team["tagged_events"]) == sum(1 for event, _ in rated if event.tag("team"))

    refused = CliRunner().invoke(app, ["reprice", *window, *config])
    assert refused.exit_code == 1
    assert "stop the worker" in refused.output
