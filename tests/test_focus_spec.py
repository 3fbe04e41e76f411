"""The FOCUS export against the specification: FOCUS 1.0 through the FinOps Foundation's
validator (zero failed checks), FOCUS 1.2 rule by rule as written in FinOps-Open-Cost-and-Usage-
Spec/FOCUS_Spec at tag ``v1.2`` (each test names the file it checks; quotes are the rule text).

Every test reads the same export of every kind of row (tests/support/focus_export.py)."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from spendstream.sinks.focus_columns import columns
from tests.support.focus_export import EUR_RATES, Exported, export_everything
from tests.support.focus_validator import CORRECTIONS, validate

pytestmark = pytest.mark.integration

# specification/columns/*.md at v1.2 whose "Feature level" is Mandatory.
MANDATORY_1_2 = (
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargePeriodEnd",
    "ChargePeriodStart", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost",
    "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory",
    "ServiceName",
)  # fmt: skip
# The FOCUS-defined SkuPriceDetails properties (skupricedetails.md, "FOCUS-Defined Properties").
SKU_PRICE_PROPERTIES = {
    "CoreCount", "DiskMaxIops", "DiskSpace", "DiskType", "GpuCount", "InstanceType",
    "InstanceSeries", "MemorySize", "NetworkMaxIops", "NetworkMaxThroughput", "OperatingSystem",
    "Redundancy", "StorageClass",
}  # fmt: skip
ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
# unit_format.md: "<plural-units>" or "<quantity> <plural-units>" with a whole-number quantity.
TOKEN_UNITS = re.compile(r"^(?:\d+ )?Tokens$")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return export_everything(tmp_path_factory.mktemp("focus"))


def rows(exported: Exported) -> list[dict[str, str]]:
    return exported.csv_rows["1.2"]


def test_the_export_has_every_kind_of_row(exported: Exported) -> None:
    drivers = {row["x_CostDriver"] for row in rows(exported)}
    assert {"input", "cache_write", "cache_read", "output"} <= drivers
    assert {"images.1024x1024.hd", "audio_seconds", "vector_queries", "invoice"} <= drivers
    assert any(row["x_UnpricedEvents"] != "0" for row in rows(exported))
    assert {row["x_BilledCostSource"] for row in rows(exported)} == {"estimate", "invoice"}
    assert sum((row["EffectiveCost"] for row in exported.rows), Decimal(0)) == (
        exported.ledger_total
    )


def test_focus_1_0_passes_the_finops_validator(exported: Exported, tmp_path: Path) -> None:
    report = validate(exported.csv_paths["1.0"], tmp_path)
    assert report.failed == ()
    assert report.skipped == 0
    assert len(report.checks) == 133  # every rule of its FOCUS 1.0 set ran
    corrected = {name.removesuffix(".yaml") for name in CORRECTIONS}
    assert corrected <= {check.split(" :: ")[0] for check in report.checks}


def test_the_validator_as_shipped_fails_only_on_its_pre_1_0_names(
    exported: Exported, tmp_path: Path
) -> None:
    report = validate(exported.csv_paths["1.0"], tmp_path, corrected=False)
    failed = {check.split(" :: ")[0] for check in report.failed}
    assert failed == {
        "Provider_Required",
        "Publisher_Required",
        "InvoiceIssuer_Required",
        "ResourceID_Required",
        "SkuPriceId_Nullable",
    }


def test_the_validator_catches_a_broken_export(exported: Exported, tmp_path: Path) -> None:
    broken = tmp_path / "broken.csv"
    text = exported.csv_paths["1.0"].read_text()
    broken.write_text(text.replace("AI and Machine Learning", "GenAI").replace(",USD,", ",usd,"))
    failed = {check.split(" :: ")[0] for check in validate(broken, tmp_path).failed}
    assert failed == {"ServiceCategory_Enum", "BillingCurrency_IsCurrencyCode"}


def test_mandatory_columns_are_present(exported: Exported) -> None:
    # columns/*.md: "<Column> MUST be present in a FOCUS dataset."
    assert set(MANDATORY_1_2) <= set(columns("1.2"))
    assert tuple(rows(exported)[0]) == columns("1.2")


def test_custom_columns_are_prefixed(exported: Exported) -> None:
    # attributes/column_handling.md: "Custom columns MUST be prefixed with a consistent `x_`
    # prefix" and "SHOULD be listed after all FOCUS columns".
    names = columns("1.2")
    custom = [name for name in names if name.startswith("x_")]
    assert custom and all(re.fullmatch(r"x_[A-Z][A-Za-z]+", name) for name in custom)
    assert names[-len(custom) :] == tuple(custom)
    assert set(columns("1.2")) - set(custom) <= set(MANDATORY_1_2) | {
        "ChargeFrequency", "ConsumedQuantity", "ConsumedUnit", "ContractedUnitPrice",
        "InvoiceId", "ListUnitPrice", "PricingCategory", "ServiceSubcategory", "SkuId",
        "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId", "SubAccountName", "Tags",
        "PricingCurrency", "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost",
        "PricingCurrencyListUnitPrice",
    }  # fmt: skip


def test_date_times_are_utc_iso_8601(exported: Exported) -> None:
    # attributes/datetime_format.md: "extended ISO 8601 format with UTC offset
    # ('YYYY-MM-DDTHH:mm:ssZ')".
    for row in rows(exported):
        for name in (
            "BillingPeriodStart",
            "BillingPeriodEnd",
            "ChargePeriodStart",
            "ChargePeriodEnd",
        ):
            assert ISO_TIME.match(row[name]), (name, row[name])


def test_charge_periods_are_days_inside_the_billing_period(exported: Exported) -> None:
    # chargeperiodstart.md / chargeperiodend.md: inclusive start, exclusive end.
    for row in rows(exported):
        start, end = (
            datetime.fromisoformat(row[n]) for n in ("ChargePeriodStart", "ChargePeriodEnd")
        )
        bill_start, bill_end = (
            datetime.fromisoformat(row[n]) for n in ("BillingPeriodStart", "BillingPeriodEnd")
        )
        assert end - start == timedelta(days=1) and start.hour == 0
        assert bill_start <= start < end <= bill_end


def test_numbers_are_plain_decimals(exported: Exported) -> None:
    # attributes/numeric_format.md: a single value, no qualifiers, commas or "+" sign.
    numeric = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity",
               "ConsumedQuantity", "ListUnitPrice", "ContractedUnitPrice",
               "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice",
               "PricingCurrencyContractedUnitPrice", "x_ExchangeRate")  # fmt: skip
    for row in rows(exported) + exported.in_euros.csv_rows["1.2"]:
        for name in numeric:
            assert row[name] == "" or re.fullmatch(r"-?\d+\.\d+", row[name]), (name, row[name])


def test_charge_category_class_and_frequency(exported: Exported) -> None:
    # chargecategory.md allowed values; chargeclass.md: null unless "Correction";
    # chargefrequency.md: not "Usage-Based" when ChargeCategory is "Purchase".
    for row in rows(exported):
        assert row["ChargeCategory"] == "Usage"
        assert row["ChargeClass"] == ""
        assert row["ChargeFrequency"] == "Usage-Based"


def test_service_category_and_subcategory(exported: Exported) -> None:
    # servicesubcategory.md: "MUST have one and only one parent ServiceCategory":
    # "Generative AI" under "AI and Machine Learning".
    pairs = {(row["ServiceCategory"], row["ServiceSubcategory"]) for row in rows(exported)}
    assert pairs == {("AI and Machine Learning", "Generative AI")}


def test_billing_currency_is_iso_4217(exported: Exported) -> None:
    # billingcurrency.md + attributes/currency_format.md: a three-letter ISO 4217 code.
    assert {row["BillingCurrency"] for row in rows(exported)} == {"USD"}
    assert {row["BillingCurrency"] for row in exported.in_euros.csv_rows["1.2"]} == {"EUR"}


def test_units_follow_the_unit_format(exported: Exported) -> None:
    # attributes/unit_format.md: "1000 Tokens" form; consumedunit.md / pricingunit.md:
    # null exactly when the quantity is null.
    for row in rows(exported):
        for quantity, unit in (
            ("ConsumedQuantity", "ConsumedUnit"),
            ("PricingQuantity", "PricingUnit"),
        ):
            assert (row[quantity] == "") == (row[unit] == "")
        if row["x_CostDriver"] in ("input", "cache_write", "cache_read", "output", "invoice"):
            assert TOKEN_UNITS.match(row["ConsumedUnit"]) and row["ConsumedUnit"] == "Tokens"
            assert row["PricingUnit"] == "1000000 Tokens"


def test_unit_price_times_quantity_is_the_cost(exported: Exported) -> None:
    # listunitprice.md / contractedunitprice.md: "The product of ListUnitPrice and
    # PricingQuantity MUST match the ListCost when PricingQuantity is not null".
    priced = [row for row in rows(exported) if row["ListUnitPrice"]]
    assert len(priced) > len(rows(exported)) // 2
    for row in priced:
        quantity = Decimal(row["PricingQuantity"])
        assert Decimal(row["ListUnitPrice"]) * quantity == Decimal(row["ListCost"])
        assert Decimal(row["ContractedUnitPrice"]) * quantity == Decimal(row["ContractedCost"])
        assert Decimal(row["ListUnitPrice"]) >= 0


def test_list_unit_price_is_null_only_where_we_have_no_price(exported: Exported) -> None:
    # listunitprice.md: "MUST NOT be null when ChargeCategory is Usage": we leave it null only
    # on unpriced usage and invoiced groups without ledger events (a documented deviation).
    for row in rows(exported):
        if not row["ListUnitPrice"]:
            assert row["x_UnpricedEvents"] != "0" or row["x_CostDriver"] == "invoice", row


def test_sku_ids_and_price_ids(exported: Exported) -> None:
    # skuid.md / skupriceid.md: not null for Usage; a SkuPriceId has one and only one parent
    # SkuId; skumeter.md: null when SkuId is null.
    parents: dict[str, set[str]] = defaultdict(set)
    for row in rows(exported):
        assert (row["SkuId"] and row["SkuPriceId"] and row["SkuMeter"]) or row[
            "x_CostDriver"
        ] == "invoice"
        parents[row["SkuPriceId"]].add(row["SkuId"])
    assert all(len(skus) == 1 for skus in parents.values())


def test_sku_price_details(exported: Exported) -> None:
    # skupricedetails.md: KeyValueFormat; "MUST be null when SkuPriceId is null"; "Property key
    # MUST begin with the string x_ unless it is a FOCUS-defined property".
    tokens = 0
    for row in rows(exported):
        if not row["SkuPriceDetails"]:
            continue
        details = json.loads(row["SkuPriceDetails"])
        assert row["SkuPriceId"]
        assert all(key.startswith("x_") or key in SKU_PRICE_PROPERTIES for key in details)
        assert all(not isinstance(value, dict | list) for value in details.values())
        if "x_TokenType" in details:
            tokens += 1
            assert details["x_TokenType"] == row["x_CostDriver"]
            assert row["SkuId"].split("/", 1)[1].startswith(details["x_Model"])
    assert tokens


def test_tags_are_key_value_objects(exported: Exported) -> None:
    # tags.md + attributes/key_value_format.md: a JSON object of scalar values.
    for row in rows(exported):
        tags = json.loads(row["Tags"])
        assert isinstance(tags, dict)
        assert all(isinstance(value, str) for value in tags.values())


def test_invoice_id_is_null_without_an_invoice(exported: Exported) -> None:
    # invoiceid.md: "MUST be null when the charge is not associated either with an invoice or
    # with a pre-generated provisional invoice".
    for row in rows(exported):
        if row["x_BilledCostSource"] == "estimate":
            assert row["InvoiceId"] == ""


def test_parquet_has_the_same_rows_and_exact_totals(exported: Exported) -> None:
    assert len(exported.parquet_rows) == len(rows(exported))
    billed = sum((row["BilledCost"] for row in exported.parquet_rows), Decimal(0))
    assert billed == sum((Decimal(row["BilledCost"]) for row in rows(exported)), Decimal(0))


def test_focus_1_0_in_euros_passes_the_finops_validator(exported: Exported, tmp_path: Path) -> None:
    report = validate(exported.in_euros.csv_paths["1.0"], tmp_path)
    assert report.failed == ()
    assert report.skipped == 0
    assert len(report.checks) == 133
    assert {row["BillingCurrency"] for row in exported.in_euros.csv_rows["1.0"]} == {"EUR"}


def test_pricing_currency_is_never_null(exported: Exported) -> None:
    # pricingcurrency.md: "MUST conform to CurrencyFormat", "MUST NOT be null"; we price in USD
    # whatever the billing currency.
    for table in (rows(exported), exported.in_euros.csv_rows["1.2"]):
        assert {row["PricingCurrency"] for row in table} == {"USD"}


def test_pricing_currency_effective_cost_is_in_the_pricing_currency(exported: Exported) -> None:
    # pricingcurrencyeffectivecost.md: "MUST NOT be null", "MUST be denominated in the
    # PricingCurrency": the USD EffectiveCost, in a USD file and a EUR one alike.
    usd, eur = rows(exported), exported.in_euros.csv_rows["1.2"]
    assert len(usd) == len(eur)
    for ours, billed_in_euros in zip(usd, eur, strict=True):
        assert ours["PricingCurrencyEffectiveCost"] == ours["EffectiveCost"] != ""
        assert billed_in_euros["PricingCurrencyEffectiveCost"] == ours["EffectiveCost"]
    total = sum((Decimal(row["PricingCurrencyEffectiveCost"]) for row in eur), Decimal(0))
    assert total == exported.ledger_total


def test_pricing_currency_unit_prices(exported: Exported) -> None:
    # pricingcurrencylistunitprice.md / pricingcurrencycontractedunitprice.md: "MUST be a
    # non-negative decimal value", "MUST be denominated in the PricingCurrency", not null on
    # Usage (null only where ListUnitPrice is: unpriced usage, the documented deviation).
    usd, eur = rows(exported), exported.in_euros.csv_rows["1.2"]
    for ours, billed_in_euros in zip(usd, eur, strict=True):
        for kind in ("List", "Contracted"):
            price = ours[f"PricingCurrency{kind}UnitPrice"]
            assert price == ours[f"{kind}UnitPrice"]
            assert billed_in_euros[f"PricingCurrency{kind}UnitPrice"] == price
            assert price == "" or Decimal(price) >= 0


def test_billing_figures_are_in_the_billing_currency(exported: Exported) -> None:
    # billedcost.md, effectivecost.md, listcost.md, contractedcost.md, listunitprice.md,
    # contractedunitprice.md: "MUST be denominated in the BillingCurrency": each is the USD
    # figure times the day's rate (x_ExchangeRate, dated x_ExchangeRateDate), exactly.
    figures = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ListUnitPrice",
               "ContractedUnitPrice")  # fmt: skip
    eur = exported.in_euros.csv_rows["1.2"]
    for ours, billed_in_euros in zip(rows(exported), eur, strict=True):
        rate = Decimal(billed_in_euros["x_ExchangeRate"])
        day = date.fromisoformat(billed_in_euros["x_ExchangeRateDate"])
        # Oct 3 and 4 (a weekend) have no rate of their own: Friday's is in force.
        charged = datetime.fromisoformat(ours["ChargePeriodStart"]).date()
        assert day == max(d for d in EUR_RATES if d <= charged)
        assert rate == EUR_RATES[day]
        for name in figures:
            if ours[name] == "":
                assert billed_in_euros[name] == ""
            else:
                assert Decimal(billed_in_euros[name]) == Decimal(ours[name]) * rate, name
        assert ours["x_ExchangeRate"] == ours["x_ExchangeRateDate"] == ""
        if billed_in_euros["ListUnitPrice"]:  # listunitprice.md's product rule still holds
            quantity = Decimal(billed_in_euros["PricingQuantity"])
            product = Decimal(billed_in_euros["ListUnitPrice"]) * quantity
            assert product == Decimal(billed_in_euros["ListCost"])
    assert {date.fromisoformat(row["x_ExchangeRateDate"]) for row in eur} == set(EUR_RATES)


def test_parquet_in_euros_keeps_every_digit(exported: Exported) -> None:
    # Converted money has 30 places (18 of the ledger, 12 of a rate): decimal256 in Parquet.
    eur = exported.in_euros
    assert len(eur.parquet_rows) == len(eur.csv_rows["1.2"])
    for stored, row in zip(eur.parquet_rows, eur.csv_rows["1.2"], strict=True):
        for name in ("BilledCost", "EffectiveCost", "PricingCurrencyEffectiveCost"):
            assert stored[name] == Decimal(row[name]), name
        assert stored["x_ExchangeRate"] == Decimal(row["x_ExchangeRate"])
