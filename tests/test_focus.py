"""FOCUS export on real chDB: rows per day x SKU x tag set, exact totals, CSV and Parquet."""

from __future__ import annotations

import csv
import json
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
from spendstream.currency import parse_rates_csv
from spendstream.currency.store import store_rates
from spendstream.events import UsageEvent
from spendstream.money import decimal_text
from spendstream.pricing import Rating
from spendstream.sinks.access import ClientReader, DirectReader
from spendstream.sinks.client import connect
from spendstream.sinks.focus import ledger_total, month_bounds
from spendstream.sinks.focus_columns import columns
from spendstream.sinks.focus_export import export_focus
from spendstream.worker.schema import migrate
from tests.support import ledger_data as shared
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration

# Fixtures shared with the audit tests.
fill_ledger = shared.fill_ledger
generate = shared.generate
write_config = shared.write_config

MONTH = "2026-10"
RATES_FROM_OCT_2 = "date,currency,rate\n2026-10-02,EUR,0.9187\n"
RATE_OF_OCT_1 = "date,currency,rate\n2026-10-01,EUR,0.9201\n"
# Late in the month, so some events cross into November and must be left out.
MONTH_END_START = datetime(2026, 10, 29, tzinfo=UTC)


TYPE_OF_EVENT = {
    "input": lambda e: e.input_tokens - e.cache_read_tokens - e.cache_write_tokens,
    "cache_write": lambda e: e.cache_write_tokens,
    "cache_read": lambda e: e.cache_read_tokens,
    "output": lambda e: e.output_tokens,
}
COST_OF_RATING = {
    "input": lambda r: r.cost_input,
    "cache_write": lambda r: r.cost_cache_write,
    "cache_read": lambda r: r.cost_cache_read,
    "output": lambda r: r.cost_output + r.cost_reasoning,
}
Key = tuple[str, str, str, str]  # (charge day, provider/model, tags JSON, token type)


def expected_sums(rated: list[tuple[UsageEvent, Rating]]) -> dict[Key, tuple[int, Decimal]]:
    """October's tokens and cost per (day, model, tag set, token type), from the events."""
    start, end = month_bounds(MONTH)
    sums: dict[Key, tuple[int, Decimal]] = {}
    for event, rating in rated:
        if not start <= event.event_time < end:
            continue
        for kind, tokens_of in TYPE_OF_EVENT.items():
            tokens, cost = tokens_of(event), COST_OF_RATING[kind](rating)
            if tokens or cost:
                key = (
                    event.event_time.strftime("%Y-%m-%dT00:00:00Z"),
                    f"{event.provider}/{event.model}",
                    json.dumps(event.tags, sort_keys=True, separators=(",", ":")),
                    kind,
                )
                before = sums.get(key, (0, Decimal(0)))
                sums[key] = (before[0] + tokens, before[1] + cost)
    return sums


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
    rated = fill_ledger(ledger_client, [*events, reordered])
    expected = expected_sums(rated)
    assert any(event.event_time >= month_bounds(MONTH)[1] for event in events)

    settings = Settings(clickhouse=ClickHouseSettings(dsn=f"chdb://{chdb_path}"))
    reader = DirectReader(settings)
    try:
        rows = export_focus(reader, MONTH, tmp_path / "focus.csv", "csv")
        export_focus(reader, MONTH, tmp_path / "focus.parquet", "parquet")
        export_focus(reader, MONTH, tmp_path / "focus-1.0.csv", "csv", version="1.0")
        total = ledger_total(reader, MONTH)
    finally:
        reader.client.close()

    expected_total = sum((cost for _, cost in expected.values()), Decimal(0))
    assert total == expected_total
    assert sum((row["BilledCost"] for row in rows), Decimal(0)) == total

    with (tmp_path / "focus.csv").open(newline="") as handle:
        from_csv = list(csv.DictReader(handle))
    with (tmp_path / "focus-1.0.csv").open(newline="") as handle:
        assert tuple(next(csv.reader(handle))) == columns("1.0")
    assert tuple(from_csv[0]) == columns("1.2")
    table = pq.read_table(tmp_path / "focus.parquet").to_pylist()
    assert len(from_csv) == len(table) == len(rows)
    assert sum((Decimal(row["BilledCost"]) for row in from_csv), Decimal(0)) == expected_total
    assert sum((row["BilledCost"] for row in table), Decimal(0)) == expected_total

    found: dict[Key, tuple[int, Decimal]] = {}
    for row, stored in zip(from_csv, table, strict=True):
        kind = row["x_CostDriver"]
        key = (row["ChargePeriodStart"], row["SkuId"].removesuffix(":" + kind), row["Tags"], kind)
        before = found.get(key, (0, Decimal(0)))
        found[key] = (
            before[0] + int(Decimal(row["ConsumedQuantity"])),
            before[1] + stored["BilledCost"],
        )
        assert Decimal(row["BilledCost"]) == Decimal(row["EffectiveCost"]) == stored["ListCost"]
        assert (row["ChargeCategory"], row["ServiceCategory"], row["ConsumedUnit"]) == (
            "Usage",
            "AI and Machine Learning",
            "Tokens",
        )
        assert row["PricingUnit"] == "1000000 Tokens"
        assert Decimal(row["PricingQuantity"]) * 1_000_000 == Decimal(row["ConsumedQuantity"])
        assert json.loads(row["SkuPriceDetails"] or "{}").get("x_TokenType", kind) == kind
        assert row["PublisherName"] == row["SkuId"].split("/")[0]
        assert row["BillingCurrency"] == "USD"
        period = datetime.fromisoformat(row["ChargePeriodStart"])
        assert stored["ChargePeriodStart"] == period
        assert stored["ChargePeriodEnd"] == period + timedelta(days=1)
    assert found == expected
    assert {key[3] for key in found} == {"input", "cache_write", "cache_read", "output"}


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

    assert pq.read_table(out).column_names == list(columns("1.2"))  # the default version

    older = tmp_path / "oct-1.0.csv"
    args = ["export", "focus", "--month", MONTH, "--out", str(older), "--focus-version", "1.0"]
    result = CliRunner().invoke(app, [*args, "-c", config])
    assert result.exit_code == 0, result.output
    assert "FOCUS 1.0 rows" in result.output
    with older.open(newline="") as handle:
        assert tuple(next(csv.reader(handle))) == columns("1.0")

    bad = CliRunner().invoke(
        app, ["export", "focus", "--month", "2026-13", "--out", str(out), "-c", config]
    )
    assert bad.exit_code != 0
    assert "YYYY-MM" in bad.output
    unknown = CliRunner().invoke(app, [*args[:-1], "1.1", "-c", config])
    assert unknown.exit_code != 0
    assert "unknown FOCUS version '1.1'" in unknown.output


def test_focus_cli_in_euros_converts_each_day_or_names_the_missing_one(
    ledger_client: Client, tmp_path: Path, chdb_path: Path
) -> None:
    rated = fill_ledger(ledger_client, generate(300, seed=8))  # Oct 1 to 4
    app = typer.Typer()
    app.add_typer(export_app, name="export")
    config = str(write_config(tmp_path, chdb_path))
    out = tmp_path / "oct-eur.csv"
    args = ["export", "focus", "--month", MONTH, "--out", str(out), "--currency", "eur"]
    store_rates(ledger_client, parse_rates_csv(RATES_FROM_OCT_2), "rates.csv", "test")
    missing = CliRunner().invoke(app, [*args, "-c", config])
    assert missing.exit_code != 0
    assert "no USD->EUR exchange rate in force on 2026-10-01" in str(missing.exception or "") + (
        missing.output
    )
    assert not out.exists()  # nothing written with a guessed rate

    store_rates(ledger_client, parse_rates_csv(RATE_OF_OCT_1), "rates.csv", "test")
    result = CliRunner().invoke(app, [*args, "-c", config])
    assert result.exit_code == 0, result.output
    rates = {1: Decimal("0.9201"), 2: Decimal("0.9187"), 3: Decimal("0.9187"), 4: Decimal("0.9187")}
    usd_by_day: dict[int, Decimal] = {}
    for event, rating in rated:
        day = event.event_time.day
        usd_by_day[day] = usd_by_day.get(day, Decimal(0)) + rating.cost_total
    by_hand = sum((usd * rates[day] for day, usd in usd_by_day.items()), Decimal(0))
    with out.open(newline="") as handle:
        written = list(csv.DictReader(handle))
    assert sum((Decimal(row["BilledCost"]) for row in written), Decimal(0)) == by_hand
    usd_total = sum(usd_by_day.values(), Decimal(0))
    assert sum((Decimal(r["PricingCurrencyEffectiveCost"]) for r in written), Decimal(0)) == (
        usd_total
    )
    assert {(r["BillingCurrency"], r["PricingCurrency"]) for r in written} == {("EUR", "USD")}
    assert {r["x_ExchangeRateDate"] for r in written} == {"2026-10-01", "2026-10-02"}
    assert f"BilledCost total {decimal_text(by_hand)} EUR" in result.output
    assert f"ledger total {decimal_text(usd_total)} USD" in result.output
    assert "dated 2026-10-01 to 2026-10-02" in result.output


def test_consumer_id_comes_from_the_ledger_customer_column(
    ledger_client: Client, tmp_path: Path
) -> None:
    events = [
        UsageEvent(
            event_time=MONTH_END_START + timedelta(minutes=i),
            provider="openai",
            model="gpt-4o",
            input_tokens=1_000 + i,
            output_tokens=50,
            tags={"team": "search"} if i % 3 else {"team": "x"},
            customer=f"acme-{i % 2}" if i % 3 else None,  # the event field (docs/agents.md)
        )
        for i in range(12)
    ]
    rated = fill_ledger(ledger_client, events)
    reader = ClientReader(ledger_client)
    rows = export_focus(reader, MONTH, tmp_path / "b.csv")
    assert {row["x_ConsumerId"] for row in rows} == {"acme-0", "acme-1", None}
    for customer in ("acme-0", "acme-1"):
        mine = [e.event_id for e in events if e.customer == customer]
        cost = sum((r.cost_total for e, r in rated if e.event_id in mine), Decimal(0))
        exported = [row["EffectiveCost"] for row in rows if row["x_ConsumerId"] == customer]
        assert sum(exported, Decimal(0)) == cost
    assert sum((row["BilledCost"] for row in rows), Decimal(0)) == ledger_total(reader, MONTH)


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
