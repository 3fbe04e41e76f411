"""FOCUS both ways: a Bedrock bill in FOCUS form (CSV and Parquet) reconciled against the ledger,
and our FOCUS export carrying invoiced BilledCost next to our EffectiveCost."""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from datetime import UTC, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from clickhouse_connect.driver.client import Client

from spendstream.events import UsageEvent
from spendstream.pricing import default_pricer
from spendstream.reconcile.billed import invoiced_amounts
from spendstream.reconcile.focus_bill import parse_focus
from spendstream.reconcile.ledger_side import AccountMap
from spendstream.reconcile.lines import ReportError
from spendstream.reconcile.providers import parse_pages
from spendstream.reconcile.store import InvoiceStore
from spendstream.reconcile.variance import Variance, compute_variance
from spendstream.sinks.access import ClientReader
from spendstream.sinks.focus import ledger_total
from spendstream.sinks.focus_export import export_focus
from tests.support.ledger_data import fill_ledger
from tests.support.reconcile_data import DAYS, START, saved_reports, true_traffic, what_we_logged

pytestmark = pytest.mark.integration

MODEL_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0"
BILLED = {"input": Decimal("3.00"), "output": Decimal("16.50")}  # output drifted from 15.00
METERS = {"input": "USE1-Claude3.5Sonnet-input-tokens", "output": "USE1-Claude3.5Sonnet-output"}


def bedrock_events(count: int = 400) -> list[UsageEvent]:
    rng = random.Random(3)
    return [
        UsageEvent(
            event_time=START + timedelta(seconds=rng.randrange(DAYS * 86_400)),
            provider="bedrock",
            model=MODEL_ID,
            input_tokens=rng.randrange(1, 30_000),
            output_tokens=rng.randrange(1, 2_000),
            tags={"team": "search"},
        )
        for _ in range(count)
    ]


def bill_rows(events: list[UsageEvent]) -> list[dict[str, object]]:
    """FOCUS 1.x rows as AWS would bill them: one per day and meter, quantities in 1K tokens."""
    sums: dict[tuple[object, str], int] = defaultdict(int)
    for event in events:
        sums[(event.event_time.date(), "input")] += event.input_tokens
        sums[(event.event_time.date(), "output")] += event.output_tokens
    rows = []
    for (day, kind), tokens in sorted(sums.items()):
        start = f"{day.isoformat()}T00:00:00Z"
        rows.append(
            {
                "BilledCost": tokens * BILLED[kind] / 1_000_000,
                "BillingCurrency": "USD",
                "ChargePeriodStart": start,
                "ChargeCategory": "Usage",
                "ProviderName": "AWS",
                "ServiceName": "Amazon Bedrock",
                "SubAccountId": "123456789012",
                "SkuId": "ABCD1234",
                "SkuMeter": METERS[kind],
                "ConsumedQuantity": Decimal(tokens) / 1000,
                "ConsumedUnit": "1K Tokens",
                "x_Model": MODEL_ID,
            }
        )
    return rows


def test_a_focus_bill_reconciles_and_loads_the_same_from_csv_and_parquet(
    ledger_client: Client, tmp_path: Path
) -> None:
    events = bedrock_events()
    fill_ledger(ledger_client, events)
    rows = bill_rows(events)
    csv_path = tmp_path / "bill.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    store = InvoiceStore(ledger_client)
    first = store.load(parse_focus("bedrock", csv_path), "bill.csv")
    assert (first.new, first.lines_written) == (DAYS, DAYS * 2)

    table = pa.Table.from_pylist(
        [
            {**row, "BilledCost": Decimal(str(row["BilledCost"])).quantize(Decimal("1e-12"))}
            for row in rows
        ]
    )
    pq.write_table(table, tmp_path / "bill.parquet")
    again = store.load(parse_focus("bedrock", tmp_path / "bill.parquet"), "bill.parquet")
    assert (again.unchanged, again.lines_written) == (DAYS, 0)

    start, end = START.date(), START.date() + timedelta(days=DAYS)
    cells = compute_variance(
        ClientReader(ledger_client), store.lines(start, end), default_pricer(), {}, start, end
    )
    total = Variance()
    for cell in cells:
        assert cell.key[1:] == ("bedrock", "", "claude-3-5-sonnet")
        total.add(cell.variance)
    drift = sum((e.output_tokens for e in events), 0) * Decimal("1.50") / 1_000_000
    assert total.difference == total.price_drift == drift > 0
    assert total.invoiced_tokens == total.our_tokens
    assert (total.never_seen, total.unpriced, total.hidden, total.unexplained) == (0, 0, 0, 0)


def test_rows_stored_under_the_otel_name_meet_the_bill_of_ours(
    ledger_client: Client, tmp_path: Path
) -> None:
    """Spans ingested before OTel's provider names were mapped (hostile report 13, item 4) hold
    ``aws.bedrock``; a bill imported as ``bedrock`` claims them too, mapped accounts included."""
    events = bedrock_events()
    old = [event.model_copy(update={"provider": "aws.bedrock"}) for event in events[::2]]
    fill_ledger(ledger_client, old + events[1::2])
    path = tmp_path / "bill.csv"
    rows = bill_rows(events)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    store = InvoiceStore(ledger_client)
    store.load(parse_focus("bedrock", path), "bill.csv")
    start, end = START.date(), START.date() + timedelta(days=DAYS)
    accounts = {"bedrock": AccountMap({"123456789012": {"team": "search"}})}
    cells = compute_variance(
        ClientReader(ledger_client), store.lines(start, end), default_pricer(), accounts, start, end
    )
    total = Variance()
    for cell in cells:
        assert cell.key[1:] == ("bedrock", "123456789012", "claude-3-5-sonnet")
        total.add(cell.variance)
    assert (
        total.invoiced_tokens
        == total.our_tokens
        == sum(e.input_tokens + e.output_tokens for e in events)
    )
    assert (total.never_seen, total.unpriced, total.hidden, total.unexplained) == (0, 0, 0, 0)
    drift = sum((e.output_tokens for e in events), 0) * Decimal("1.50") / 1_000_000
    assert total.difference == total.price_drift == drift


def test_focus_export_carries_invoiced_billed_cost(ledger_client: Client, tmp_path: Path) -> None:
    logged, _ = what_we_logged(true_traffic())
    fill_ledger(ledger_client, logged)
    saved = saved_reports(true_traffic())
    store = InvoiceStore(ledger_client)
    store.load(parse_pages("anthropic", [("p", page) for page in saved["anthropic-cost"]]), "a")
    reader = ClientReader(ledger_client)
    month = START.strftime("%Y-%m")
    invoices = invoiced_amounts(reader, default_pricer(), month)
    rows = export_focus(reader, month, tmp_path / "focus.csv", "csv", invoices)
    export_focus(reader, month, tmp_path / "focus.parquet", "parquet", invoices)

    assert sum((r["EffectiveCost"] for r in rows), Decimal(0)) == ledger_total(reader, month)
    invoiced_rows = [r for r in rows if r["x_BilledCostSource"] == "invoice"]
    assert {(r["ProviderName"], r["x_Model"]) for r in invoiced_rows} == {
        ("anthropic", "claude-sonnet-4-5")
    }
    billed_by_day: dict[object, Decimal] = defaultdict(Decimal)
    for row in invoiced_rows:
        billed_by_day[row["ChargePeriodStart"].astimezone(UTC).date()] += row["BilledCost"]
    invoice_by_day: dict[object, Decimal] = defaultdict(Decimal)
    for line in store.lines(START.date(), START.date() + timedelta(days=DAYS), "anthropic"):
        invoice_by_day[line.day] += line.amount_usd
    assert billed_by_day == invoice_by_day
    for row in rows:
        if row["x_BilledCostSource"] == "estimate":
            assert row["BilledCost"] == row["EffectiveCost"]
    table = pq.read_table(tmp_path / "focus.parquet").to_pylist()
    assert sum((r["BilledCost"] for r in table), Decimal(0)) == sum(
        (r["BilledCost"] for r in rows), Decimal(0)
    )
    with (tmp_path / "focus.csv").open() as handle:
        sources = {row["x_BilledCostSource"] for row in csv.DictReader(handle)}
    assert sources == {"invoice", "estimate"}


def test_our_own_focus_export_of_bedrock_reconciles_to_the_ledger(
    ledger_client: Client, tmp_path: Path
) -> None:
    """A FOCUS 1.2 file we exported (SkuId ``bedrock/<model>:<token type>``, no x_Model) loaded
    back as the Bedrock bill: the model is the ledger's (its ``-v1:0`` kept, the ``:input`` of
    the SkuId dropped), so nothing is never-seen and the difference is 0."""
    events = bedrock_events(120)
    fill_ledger(ledger_client, events)
    reader = ClientReader(ledger_client)
    path = tmp_path / "ours.csv"
    export_focus(reader, START.strftime("%Y-%m"), path, "csv")
    parsed = parse_focus("bedrock", path)
    assert {line.model for line in parsed.lines} == {MODEL_ID}
    store = InvoiceStore(ledger_client)
    store.load(parsed, "ours.csv")
    start, end = START.date(), START.date() + timedelta(days=DAYS)
    total = Variance()
    for cell in compute_variance(reader, store.lines(start, end), default_pricer(), {}, start, end):
        total.add(cell.variance)
    assert total.invoiced_usd == total.our_usd > 0
    assert (total.difference, total.never_seen, total.unexplained) == (0, 0, 0)
    assert total.invoiced_tokens == total.our_tokens


def test_a_focus_bill_without_billed_cost_or_header_is_refused(tmp_path: Path) -> None:
    """No BilledCost column would load every line as $0 (replacing the days' right lines); an
    empty file would load nothing and say so with exit 0. Both are refused, naming the fix."""
    rows = bill_rows(bedrock_events(20))
    path = tmp_path / "no-cost.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[k for k in rows[0] if k != "BilledCost"])
        writer.writeheader()
        writer.writerows({k: v for k, v in row.items() if k != "BilledCost"} for row in rows)
    with pytest.raises(ReportError, match=r"no-cost\.csv: no BilledCost column: a FOCUS bill"):
        parse_focus("bedrock", path)
    pq.write_table(pa.Table.from_pylist([{"BilledCost": Decimal(1)}]), tmp_path / "b.parquet")
    with pytest.raises(ReportError, match="no ChargePeriodStart column"):
        parse_focus("bedrock", tmp_path / "b.parquet")
    (tmp_path / "empty.csv").write_text("\n")
    with pytest.raises(ReportError, match=r"empty\.csv: empty: a FOCUS bill starts"):
        parse_focus("bedrock", tmp_path / "empty.csv")
