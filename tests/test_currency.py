"""Currencies: effective-dated rates, exact conversion checked against hand computation, the
missing-rate error, CSV import errors, and the money rule in other currencies (Python and the
dashboard's JavaScript in headless Chromium), and FOCUS rows billed in another currency."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from spendstream.config import ConfigError, load_settings
from spendstream.currency import (
    MissingRate,
    RateFileError,
    RateTable,
    convert,
    parse_rates_csv,
)
from spendstream.currency.focus import FocusInCurrency
from spendstream.money import format_money, format_usd
from tests.support.browser import chromium, watched_page

COMMON_JS = Path(__file__).resolve().parent.parent / "spendstream/dashboard/static/common.js"

# Friday 4 to Tuesday 8 December 2026 (no rate on the weekend, as a central bank publishes).
EUR = RateTable(
    "EUR",
    {
        date(2026, 12, 4): Decimal("0.9213"),
        date(2026, 12, 7): Decimal("0.9187"),
        date(2026, 12, 8): Decimal("0.92"),
    },
    max_age_days=4,
)


def test_the_rate_in_force_is_the_newest_on_or_before_the_day() -> None:
    assert EUR.rate_on(date(2026, 12, 4)).per_usd == Decimal("0.9213")
    saturday = EUR.rate_on(date(2026, 12, 5))
    assert saturday.day == date(2026, 12, 4) and saturday.per_usd == Decimal("0.9213")
    assert EUR.rate_on(date(2026, 12, 7)).per_usd == Decimal("0.9187")
    # Four days after the last rate still counts (a long weekend); the fifth does not.
    assert EUR.rate_on(date(2026, 12, 12)).day == date(2026, 12, 8)
    with pytest.raises(MissingRate) as late:
        EUR.rate_on(date(2026, 12, 13))
    assert "in force on 2026-12-13" in str(late.value) and "of 2026-12-08" in str(late.value)
    assert late.value.day == date(2026, 12, 13)


def test_missing_rates_are_an_error_naming_the_day_never_one() -> None:
    with pytest.raises(MissingRate) as before:
        EUR.rate_on(date(2026, 12, 3))
    text = str(before.value)
    assert "no USD->EUR exchange rate in force on 2026-12-03" in text
    assert "spendstream rates import" in text and "fixed_rates" in text
    with pytest.raises(MissingRate, match="2026-01-01"):
        RateTable("GBP").rate_on(date(2026, 1, 1))
    # A day with spend and no rate fails the whole conversion (no partial, no guessed sum).
    with pytest.raises(MissingRate, match="2026-12-03"):
        EUR.convert_daily({date(2026, 12, 3): Decimal("1"), date(2026, 12, 4): Decimal("1")})
    # A day without spend needs no rate.
    assert EUR.convert_daily({date(2026, 12, 3): Decimal(0)}).amount == 0


def test_daily_conversion_matches_hand_computation() -> None:
    usd = {
        date(2026, 12, 4): Decimal("1234.567890123456789012"),
        date(2026, 12, 5): Decimal("0.000001"),  # Saturday: Friday's rate
        date(2026, 12, 7): Decimal("99.99"),
        date(2026, 12, 8): Decimal("-3.5"),  # a credit converts like a charge
    }
    converted = EUR.convert_daily(usd)
    # By hand: 1234.567890123456789012 x 0.9213 as x 0.9 + x 0.02 + x 0.001 + x 0.0003
    #   1111.1111011111111101108 + 24.69135780246913578024 + 1.234567890123456789012
    #   + 0.3703703670370370367036 = 1137.4073971707407397167556
    #   0.000001 x 0.9213 = 0.0000009213;  99.99 x 0.9187 = 91.860813;  -3.5 x 0.92 = -3.22
    first = (
        Decimal("1111.1111011111111101108")
        + Decimal("24.69135780246913578024")
        + Decimal("1.234567890123456789012")
        + Decimal("0.3703703670370370367036")
    )
    assert first == Decimal("1137.4073971707407397167556")
    by_hand = first + Decimal("0.0000009213") + Decimal("91.860813") + Decimal("-3.22")
    assert by_hand == Decimal("1226.0482110920407397167556")
    assert converted.amount == by_hand
    assert [r.day for r in converted.rates] == [
        date(2026, 12, 4),
        date(2026, 12, 7),
        date(2026, 12, 8),
    ]
    assert converted.describe() == (
        "daily rates of 2026-12-04 to 2026-12-08, latest 1 USD = 0.92 EUR on 2026-12-08"
    )
    # The sum of per-day conversions is not the total at one rate: the rule is per day.
    assert converted.amount != convert(sum(usd.values(), Decimal(0)), EUR.rate_on(usd.popitem()[0]))


def test_fixed_rate_applies_every_day() -> None:
    fixed = RateTable("CHF", fixed=Decimal("0.88"))
    rate = fixed.rate_on(date(1999, 1, 1))
    assert rate.fixed and rate.describe() == "1 USD = 0.88 CHF (fixed rate)"
    got = fixed.convert_daily({date(2026, 1, 1): Decimal("10"), date(2026, 6, 1): Decimal("2.5")})
    assert got.amount == Decimal("11.00") and got.describe() == "1 USD = 0.88 CHF (fixed rate)"


def test_csv_import_parses_and_rejects_with_line_and_fix() -> None:
    good = "\ufeffDate,Currency,Rate,source\n2026-12-04,eur,0.9213,ECB\n\n2026-12-04,GBP,0.79,x\n"
    rates = parse_rates_csv(good, "dec.csv")
    assert [(r.currency, r.day, r.per_usd) for r in rates] == [
        ("EUR", date(2026, 12, 4), Decimal("0.9213")),
        ("GBP", date(2026, 12, 4), Decimal("0.79")),
    ]
    bad = (
        "date,currency,rate\n"
        "2026-13-01,EUR,0.9\n"
        "2026-12-01,USD,1\n"
        "2026-12-02,EUR,-1\n"
        "2026-12-03,EUR,abc\n"
        "2026-12-04,EUR,0.91\n"
        "2026-12-04,EUR,0.92\n"
    )
    with pytest.raises(RateFileError) as error:
        parse_rates_csv(bad, "bad.csv")
    text = str(error.value)
    assert text.startswith("bad.csv: nothing imported")
    assert "bad.csv line 2: date = '2026-13-01'; fix: YYYY-MM-DD" in text
    assert "line 3: currency: USD is the ledger's own currency" in text
    assert "line 4: rate: '-1' is not a positive number; fix: write units" in text
    assert "line 5: rate: 'abc' is not a number" in text
    assert "line 7: a second EUR rate for 2026-12-04" in text
    with pytest.raises(RateFileError, match="lacks rate; fix: start the file with"):
        parse_rates_csv("date,currency\n2026-12-04,EUR\n", "x.csv")
    with pytest.raises(RateFileError, match="no rates in the file"):
        parse_rates_csv("date,currency,rate\n", "x.csv")


MONEY_VALUES = [
    "0",
    "1",
    "1.005",
    "0.999949",
    "0.99996",
    "1234567.891",
    "0.45675",
    "0.0042",
    "-0.5",
    "-12.345",
]


def test_money_rule_in_other_currencies() -> None:
    assert format_money(Decimal("1234.565"), "EUR") == "€1,234.57"
    assert format_money(Decimal("0.0042"), "GBP") == "£0.004200"
    assert format_money(Decimal("-12.345"), "CHF") == "-CHF 12.35"
    assert format_money(Decimal(0), "JPY") == "¥0.00"
    for value in MONEY_VALUES:  # USD is unchanged: the same text as before
        assert format_money(Decimal(value), "USD") == format_usd(Decimal(value))


@pytest.mark.integration  # starts Chromium
def test_dashboard_money_rule_matches_python() -> None:
    """SS.usd and SS.inCurrency (dashboard/static/common.js) run in headless Chromium on the same
    values as Python's one money rule."""
    with chromium() as browser, watched_page(browser) as (page, problems):
        page.set_content("<!doctype html><title>money</title><p id=error hidden></p>")
        page.add_script_tag(content=COMMON_JS.read_text(encoding="utf-8"))
        shown = page.evaluate(
            "values => ['USD', 'EUR', 'CHF'].map("
            "c => values.map(v => c === 'USD' ? SS.usd(v) : SS.inCurrency(v, c)))",
            MONEY_VALUES,
        )
    assert problems == []
    expected = [[format_money(Decimal(v), c) for v in MONEY_VALUES] for c in ("USD", "EUR", "CHF")]
    assert shown == expected
    assert shown[1][:2] == ["€0.00", "€1.00"]  # the page ran the rule, not an empty echo


def test_currency_config_errors_name_file_key_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "spendstream.toml"
    path.write_text('[currency]\ndisplay = "euro"\nfixed_rates = { EUR = "-1" }\n')
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    text = str(error.value)
    assert str(path) in text and "currency.display" in text and "currency.fixed_rates" in text


def focus_row(day: date, cost: str, price: str | None) -> dict[str, object]:
    """The columns FocusInCurrency reads and writes, as the sinks build them (USD)."""
    usd = Decimal(cost)
    unit = None if price is None else Decimal(price)
    return {
        "ChargePeriodStart": datetime(day.year, day.month, day.day, tzinfo=UTC),
        "BillingCurrency": "USD",
        "PricingCurrency": "USD",
        **dict.fromkeys(("BilledCost", "EffectiveCost", "ListCost", "ContractedCost"), usd),
        "PricingCurrencyEffectiveCost": usd,
        **dict.fromkeys(("ListUnitPrice", "ContractedUnitPrice"), unit),
        **dict.fromkeys(
            ("PricingCurrencyListUnitPrice", "PricingCurrencyContractedUnitPrice"), unit
        ),
        "x_ExchangeRate": None,
        "x_ExchangeRateDate": None,
    }


def test_focus_rows_in_euros_match_hand_computation() -> None:
    friday = focus_row(date(2026, 12, 4), "12.5", "2.5")
    sunday = focus_row(date(2026, 12, 6), "0.000000000000000001", None)  # unpriced: no price
    converted = FocusInCurrency(EUR)([friday, sunday])
    # 12.5 x 0.9213 = 11.51625 and 2.5 x 0.9213 = 2.30325 (by hand); Sunday uses Friday's rate.
    assert converted[0]["BilledCost"] == converted[0]["ContractedCost"] == Decimal("11.51625")
    assert converted[0]["ListUnitPrice"] == Decimal("2.30325")
    assert converted[1]["EffectiveCost"] == Decimal("0.0000000000000000009213")
    assert converted[1]["ListUnitPrice"] is None
    for row in converted:
        assert row["BillingCurrency"] == "EUR" and row["PricingCurrency"] == "USD"
        assert (row["x_ExchangeRate"], row["x_ExchangeRateDate"]) == (
            Decimal("0.9213"),
            "2026-12-04",
        )
    assert converted[0]["PricingCurrencyEffectiveCost"] == Decimal("12.5")  # stays USD
    assert converted[0]["PricingCurrencyListUnitPrice"] == Decimal("2.5")
    assert friday["BilledCost"] == Decimal("12.5")  # the input rows are not changed
    with pytest.raises(MissingRate, match="in force on 2026-12-03"):
        FocusInCurrency(EUR)([friday, focus_row(date(2026, 12, 3), "1", "1")])
