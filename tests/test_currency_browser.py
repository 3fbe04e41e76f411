"""A budget in euros on a fiscal quarter, end to end: rates imported through the worker's API,
the budget's status and report in euros equal to the ledger at that rate, and the dashboard's
budgets page showing euros with the rate beside them (headless Chromium; screenshot in the
pytest tmp dir, or docs/img with SPENDSTREAM_SHOTS=docs/img)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from spendstream.money import format_money
from tests.support.api_env import ApiEnv, start_env
from tests.support.browser import chromium, log_in, screenshot_dir, watched_page

pytestmark = pytest.mark.integration

EURO_BUDGET = """
[[budgets]]
name = "alpha-eur-quarter"
scope = { team = "alpha" }
period = "quarter"
fiscal_year_start = 4
timezone = "Europe/Paris"
currency = "EUR"
limit = "900"
rollover_cap = "100"
thresholds = [100]
forecast = false

[currency]
display = "EUR"
"""
RATE = Decimal("0.9213")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, migrated_template: Path) -> Iterator[ApiEnv]:
    yield from start_env(tmp_path_factory.mktemp("currency"), migrated_template, EURO_BUDGET)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with watched_page(browser) as (page, problems):
        yield page
    assert problems == [], f"dialogs, script errors or CSP violations: {problems}"


def alpha_usd_this_quarter(env: ApiEnv) -> Decimal:
    sql = "SELECT toString(sum(cost_total)) FROM ledger FINAL WHERE team = 'alpha'"
    rows = env.worker.api().post("/sql", {"query": sql})["rows"]
    return Decimal(rows[0][0])


def test_euro_budget_through_the_api_and_the_page(
    env: ApiEnv, page: Page, tmp_path_factory: pytest.TempPathFactory
) -> None:
    before = env.call("GET", "/budgets/status", env.tokens["viewer-all"])
    assert before.status_code == 409 and "exchange rate in force on" in before.json()["detail"]
    today = datetime.now(UTC).date()
    days = [today + timedelta(days=d) for d in (-2, -1, 0, 1)]
    text = "date,currency,rate\n" + "".join(f"{d},EUR,{RATE}\n" for d in days)
    body = {"csv": text, "source": "test.csv"}
    assert env.call("POST", "/rates", env.tokens["viewer-all"], json=body).status_code == 403
    done = env.call("POST", "/rates", env.tokens["admin"], json=body)
    assert done.status_code == 200 and done.json()["rows"] == 4

    status = env.call("GET", "/budgets/status", env.tokens["viewer-all"]).json()
    rows = {r[0]: dict(zip(status["columns"], r, strict=True)) for r in status["rows"]}
    euro = rows["alpha-eur-quarter"]
    spent = alpha_usd_this_quarter(env) * RATE
    assert Decimal(euro["spend"]) == spent and spent > 0
    assert Decimal(euro["limit"]) == 1000  # 900 + the capped 100 unused last quarter
    assert euro["currency"] == "EUR" and f"1 USD = {RATE} EUR on" in euro["rate"]
    assert euro["period"].startswith("quarter Q") and "FY" in euro["period"]
    assert rows["alpha-month"]["currency"] == "USD" and rows["alpha-month"]["rate"] == ""

    report = env.call(
        "GET", "/spend", env.tokens["viewer-all"], params={"by": "team", "currency": "EUR"}
    ).json()
    by_team = {r[0]: dict(zip(report["columns"], r, strict=True)) for r in report["rows"]}
    assert Decimal(by_team["alpha"]["cost_eur"]) == spent

    log_in(page, env.worker.url, env.tokens["viewer-all"], "/budgets")
    cell = page.locator("#budgets tbody tr", has_text="alpha-eur-quarter").locator("td").nth(2)
    cell.wait_for()
    assert cell.inner_text() == format_money(spent, "EUR")
    assert Decimal(cell.get_attribute("data-exact") or "") == spent
    row_text = page.locator("#budgets tbody tr", has_text="alpha-eur-quarter").inner_text()
    assert "€1,000.00" in row_text and f"1 USD = {RATE} EUR on" in row_text
    card = page.locator("#burndowns [data-budget='alpha-eur-quarter']")
    card.locator("span.muted", has_text="€").wait_for()
    assert f"1 USD = {RATE} EUR" in card.inner_text()
    assert card.locator("svg text", has_text="€1,000.00").count() == 1  # the limit's axis label
    assert "$" not in card.inner_text()
    shots = screenshot_dir(tmp_path_factory)
    page.screenshot(path=str(shots / "budgets-currency.png"), full_page=True)


def import_rates(env: ApiEnv, currency: str, days: list[str]) -> None:
    text = "date,currency,rate\n" + "".join(f"{d},{currency},{RATE}\n" for d in days)
    body = {"csv": text, "source": f"{currency}.csv"}
    assert env.call("POST", "/rates", env.tokens["admin"], json=body).status_code == 200


def test_explore_in_the_display_currency_and_its_csv(
    env: ApiEnv, page: Page, tmp_path_factory: pytest.TempPathFactory
) -> None:
    today = datetime.now(UTC).date()
    import_rates(env, "EUR", [str(today + timedelta(days=d)) for d in (-2, -1, 0, 1)])
    import_rates(env, "GBP", [str(today - timedelta(days=60))])  # too old for today: missing
    offered = env.call("GET", "/currencies", env.tokens["viewer-all"]).json()
    assert offered == {"display": "EUR", "currencies": ["EUR", "GBP"]}

    log_in(page, env.worker.url, env.tokens["viewer-all"], "/explore")
    page.locator("#table th", has_text="cost_eur").wait_for()
    assert page.locator("#currency").input_value() == "EUR"  # [currency] display
    params = {"by": "team", "granularity": "hour", "since": "24h", "currency": "EUR"}
    api = env.call("GET", "/spend", env.tokens["viewer-all"], params=params).json()
    expected = [dict(zip(api["columns"], r, strict=True)) for r in api["rows"]]
    headers = page.locator("#table th").all_inner_texts()
    assert headers[:5] == ["period", "team", "cost_usd", "cost_eur", "rate"]
    shown = page.locator("#table tbody tr")
    assert shown.count() == len(expected) > 0
    total = Decimal(0)
    for index, row in enumerate(expected):
        cells = shown.nth(index).locator("td")
        converted = Decimal(cells.nth(3).get_attribute("data-exact") or "")
        assert converted == Decimal(str(row["cost_usd"])) * RATE == Decimal(str(row["cost_eur"]))
        assert cells.nth(3).inner_text() == format_money(converted, "EUR")
        assert f"1 USD = {RATE} EUR on 20" in cells.nth(4).inner_text() == row["rate"]
        total += converted
    assert page.locator("#total span").get_attribute("data-exact") == f"{total.normalize():f}"
    with page.expect_download() as download:
        page.click("#csv")
    csv = Path(download.value.path()).read_text().splitlines()
    assert csv[0].startswith("period,team,cost_usd,cost_eur,rate,events")
    assert len(csv) - 1 == len(expected) and f"{RATE} EUR on" in csv[1]
    shots = screenshot_dir(tmp_path_factory)
    page.screenshot(path=str(shots / "explore-currency.png"), full_page=True)

    # A currency without a rate in force: the API's error naming the day, and no table.
    page.select_option("#currency", "GBP")
    page.click("#explore-form button[type=submit]")
    in_pounds = {**params, "currency": "GBP"}
    refused = env.call("GET", "/spend", env.tokens["viewer-all"], params=in_pounds)
    assert refused.status_code == 409
    page.locator("#error", has_text="GBP").wait_for()
    assert page.locator("#error").inner_text() == refused.json()["detail"]
    assert "no USD->GBP exchange rate in force on 20" in refused.json()["detail"]
    assert page.locator("#table table").count() == 0

    # USD: as before, no converted column.
    page.select_option("#currency", "USD")
    page.click("#explore-form button[type=submit]")
    page.wait_for_url("**currency=USD**")
    page.locator("#table tbody tr").first.wait_for()
    assert "cost_eur" not in page.locator("#table thead").inner_text()

    # The Overview's spend cards in [currency] display too, equal to the API's sums.
    page.goto(f"{env.worker.url}/")
    now = datetime.now(UTC)
    for card, since in (("spend-month", now.replace(day=1)), ("spend-today", now)):
        start = since.replace(hour=0, minute=0, second=0, microsecond=0).isoformat()
        query = {"by": "team", "since": start, "currency": "EUR", "limit": 10000}
        answer = env.call("GET", "/spend", env.tokens["viewer-all"], params=query).json()
        column = answer["columns"].index("cost_eur")
        in_euros = sum(Decimal(str(r[column])) for r in answer["rows"])
        figure = page.locator(f"#{card}-in span")
        figure.wait_for()
        assert Decimal(figure.get_attribute("data-exact") or "") == in_euros > 0
        assert f"1 USD = {RATE} EUR on" in page.locator(f"#{card}-in").inner_text()
    page.screenshot(path=str(shots / "overview-currency.png"))
