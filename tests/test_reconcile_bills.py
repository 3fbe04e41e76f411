"""Bills as they arrive: FOCUS exports of AWS, Azure and Google Cloud (opaque SKUs, models in
usage types and meters, ``1000 Tokens`` units, Pacific-time periods), one bill in several files,
and the seen/unseen rule as documented."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.events import UsageEvent
from spendstream.pricing import default_pricer
from spendstream.reconcile.billed import invoiced_amounts
from spendstream.reconcile.focus_bill import (
    aws_usage_model,
    charge_day,
    parse_focus,
    token_scale,
)
from spendstream.reconcile.ledger_side import LedgerCell
from spendstream.reconcile.lines import ReportError
from spendstream.reconcile.loading import import_files
from spendstream.reconcile.schema import LINE_COLUMNS
from spendstream.reconcile.store import InvoiceStore
from spendstream.reconcile.variance import InvoiceCell, Variance, all_seen, compute_variance
from spendstream.sinks import migrations as ledger_schema
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from spendstream.sinks.focus_export import export_focus
from spendstream.worker.schema import MIGRATIONS, migrate
from tests.support.focus_bills import aws_row, azure_row, gcp_row, write_bill
from tests.support.ledger_data import fill_ledger

DAY = date(2026, 10, 2)
MODEL_ID = "amazon.nova-pro-v1:0"


def test_aws_usage_types_name_the_model_behind_an_opaque_sku(tmp_path: Path) -> None:
    rows = [
        aws_row("2026-10-02", "USE1-NovaPro-input-tokens", 2_800_000, Decimal("2.24")),
        aws_row("2026-10-02", "USE1-NovaPro-output-tokens", 100_000, Decimal("0.32")),
        aws_row("2026-10-02", "USE1-NovaPro-cache-read-input-tokens", 40_000, Decimal("0.008")),
    ]
    parsed = parse_focus("bedrock", write_bill(tmp_path / "aws.csv", rows))
    found = {(line.model, line.token_type, line.tokens) for line in parsed.lines}
    assert found == {
        ("nova-pro", "input", 2_800_000),
        ("nova-pro", "output", 100_000),
        ("nova-pro", "cache_read", 40_000),
    }
    assert {line.account for line in parsed.lines} == {"123456789012"}
    assert aws_usage_model("USW2-Claude3.5Sonnet-output-tokens") == "claude-3-5-sonnet"
    assert aws_usage_model("EUC1-NovaLite-cache-write-input-token-count") == "nova-lite"


def test_azure_meters_and_times_without_seconds(tmp_path: Path) -> None:
    moment = "2026-10-02T00:00Z"
    rows = [
        azure_row(moment, "gpt 4o 0513 Input global Tokens", Decimal(1500), Decimal("3.75")),
        azure_row(moment, "gpt 4o 0513 Outp glbl Tokens", Decimal("20.5"), Decimal("0.205")),
        azure_row(moment, "gpt 4o 0513 cached Inp glbl Tokens", Decimal(300), Decimal("0.375")),
    ]
    parsed = parse_focus("azure", write_bill(tmp_path / "azure.csv", rows))
    found = {(line.model, line.token_type, line.tokens, line.day) for line in parsed.lines}
    assert found == {
        ("gpt-4o-0513", "input", 1_500_000, DAY),
        ("gpt-4o-0513", "output", 20_500, DAY),
        ("gpt-4o-0513", "cache_read", 300_000, DAY),
    }


def test_google_hourly_rows_in_pacific_time_fall_on_their_utc_day(tmp_path: Path) -> None:
    # 17:00 and 23:00 on Oct 1 in Pacific daylight time are 00:00 and 06:00 UTC on Oct 2.
    sku_in, sku_out = "Gemini 2.0 Flash Input Text Tokens", "Gemini 2.0 Flash Output Text Tokens"
    rows = [
        gcp_row("2026-10-01T16:00:00-07:00", sku_in, 1000, Decimal("0.0001")),
        gcp_row("2026-10-01T17:00:00-07:00", sku_in, 2000, Decimal("0.0002")),
        gcp_row("2026-10-01T23:00:00-07:00", sku_out, 400, Decimal("0.00016")),
    ]
    parsed = parse_focus("google", write_bill(tmp_path / "gcp.csv", rows))
    found = {(line.day, line.model, line.token_type, line.tokens) for line in parsed.lines}
    assert found == {
        (date(2026, 10, 1), "gemini-2.0-flash", "input", 1000),
        (DAY, "gemini-2.0-flash", "input", 2000),
        (DAY, "gemini-2.0-flash", "output", 400),
    }
    pacific = timezone(timedelta(hours=-7))
    assert charge_day(datetime(2026, 10, 1, 20, tzinfo=pacific), "parquet") == DAY
    assert charge_day("2026-10-02T01:00:00", "x") == DAY  # no offset: UTC


def test_token_units_are_scaled_by_their_quantity() -> None:
    assert token_scale("1000 Tokens") == 1000  # the FOCUS UnitFormat example
    assert token_scale("Tokens") == token_scale("Token") == 1
    assert token_scale("1K Tokens") == token_scale("Thousand Tokens") == 1000
    assert token_scale("1M Tokens") == token_scale("1000000 Tokens") == 1_000_000
    assert token_scale("Million Tokens") == 1_000_000
    assert token_scale("Hours") is None


def test_a_token_unit_we_cannot_read_is_refused(tmp_path: Path) -> None:
    row = aws_row("2026-10-02", "USE1-NovaPro-input-tokens", 1000, Decimal("0.0008"))
    row["ConsumedUnit"] = "Tokens/Second"
    with pytest.raises(ReportError, match="Tokens/Second"):
        parse_focus("bedrock", write_bill(tmp_path / "odd.csv", [row]))


def cell(input_tokens: int, cache_read: int, cache_write: int) -> LedgerCell:
    ours = LedgerCell()
    ours.tokens = {"input": input_tokens, "cache_read": cache_read, "cache_write": cache_write}
    ours.tokens["output"] = 0
    return ours


def test_all_seen_compares_input_and_cache_read_only() -> None:
    invoice = InvoiceCell()
    invoice.tokens = {"input": 1_000, "cache_read": 9_000, "cache_write": 500, "output": 0}
    # Ours: 5 % fewer input-side tokens, made up by our cache writes: not every call was seen.
    assert not all_seen(invoice, cell(950, 8_550, 2_000))
    assert all_seen(invoice, cell(1_000, 9_000, 0))
    with_requests = InvoiceCell(requests=10)
    assert all_seen(with_requests, LedgerCell(requests=10))
    assert not all_seen(with_requests, LedgerCell(requests=9))


def nova_events(count: int = 120) -> list[UsageEvent]:
    return [
        UsageEvent(
            event_id=f"nova-{i}",
            event_time=datetime(2026, 10, 2, 1, tzinfo=UTC) + timedelta(minutes=i),
            provider="bedrock",
            model=MODEL_ID,
            input_tokens=20_000 + i,
            output_tokens=900,
        )
        for i in range(count)
    ]


@pytest.mark.integration
def test_a_bill_in_1000_token_units_in_two_files_reconciles_as_price_drift(
    ledger_client: Client, tmp_path: Path
) -> None:
    events = nova_events()
    rated = fill_ledger(ledger_client, events)
    inputs = sum(e.input_tokens for e in events)
    outputs = sum(e.output_tokens for e in events)
    our_input = sum((r.cost_input for _, r in rated), Decimal(0))
    our_output = sum((r.cost_output for _, r in rated), Decimal(0))
    # The bill: $0.11 more than us on input (a price drift); one day in two files (two parts).
    first = [
        aws_row("2026-10-02", "USE1-NovaPro-input-tokens", inputs, our_input + Decimal("0.11"))
    ]
    second = [aws_row("2026-10-02", "USE1-NovaPro-output-tokens", outputs, our_output)]
    files = [
        write_bill(tmp_path / "part-1.csv", first),
        write_bill(tmp_path / "part-2.csv", second),
    ]
    store = InvoiceStore(ledger_client)
    ((_, loaded),) = import_files(store, "bedrock", files)
    assert (loaded.new, loaded.lines_written) == (1, 2)
    lines = store.lines(DAY, DAY + timedelta(days=1))
    assert sum((line.amount_usd for line in lines), Decimal(0)) == our_input + our_output + Decimal(
        "0.11"
    )

    cells = compute_variance(
        ClientReader(ledger_client), lines, default_pricer(), {}, DAY, DAY + timedelta(days=1)
    )
    total = Variance()
    for item in cells:
        assert item.key[1:] == ("bedrock", "", "nova-pro")
        total.add(item.variance)
    assert total.invoiced_tokens == total.our_tokens == inputs + outputs
    assert total.difference == total.price_drift == Decimal("0.11")
    assert (total.never_seen, total.hidden, total.unpriced, total.unexplained) == (0, 0, 0, 0)

    again = import_files(store, "bedrock", files)  # idempotent as one report
    assert [result.unchanged for _, result in again] == [1]


@pytest.mark.integration
def test_migration_410_keeps_a_previous_release_table_and_stores_invoice_ids(
    chdb_path: Path, tmp_path: Path
) -> None:
    client = connect(f"chdb://{chdb_path}", "spendstream")
    try:
        # The previous release: every migration but 410, lines written without invoice_id.
        ledger_schema.migrate(client, [m for m in MIGRATIONS if m.version != 410])
        rows = [aws_row("2026-10-02", "USE1-NovaPro-input-tokens", 5_000, Decimal("0.004"))]
        old = parse_focus("bedrock", write_bill(tmp_path / "old.csv", rows))
        before_columns = [c for c in LINE_COLUMNS if c != "invoice_id"]
        now = datetime.now(UTC)
        client.insert(
            "invoice_lines",
            [[*line.key, *line.values[:4], "old", now, 1, 0] for line in old.lines],
            column_names=before_columns,
        )
        totals = "SELECT count(), sum(amount_usd), sum(tokens) FROM invoice_lines FINAL"
        before = client.query(totals).result_rows
        assert migrate(client) == [410]
        assert client.query(totals).result_rows == before
        store = InvoiceStore(client)
        (line,) = store.lines(DAY, DAY + timedelta(days=1))
        assert (line.invoice_id, line.tokens) == ("", 5_000)

        # A bill naming its invoice: stored, and the FOCUS export's InvoiceId.
        fill_ledger(client, nova_events(5))
        rows[0]["InvoiceId"] = "EUINGB26-000123"
        loaded = store.load(parse_focus("bedrock", write_bill(tmp_path / "new.csv", rows)), "new")
        assert (loaded.replaced, loaded.lines_written) == (1, 1)
        (line,) = store.lines(DAY, DAY + timedelta(days=1))
        assert line.invoice_id == "EUINGB26-000123"
        reader = ClientReader(client)
        invoices = invoiced_amounts(reader, default_pricer(), "2026-10")
        exported = export_focus(reader, "2026-10", tmp_path / "f.csv", "csv", invoices)
        invoiced = [row for row in exported if row["x_BilledCostSource"] == "invoice"]
        assert len(invoiced) == len(exported) == 2  # input and output of the invoiced day
        assert {row["InvoiceId"] for row in invoiced} == {"EUINGB26-000123"}
    finally:
        client.close()
