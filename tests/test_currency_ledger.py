"""Currencies and rollover on real chDB: a budget in euros converted per local day at that
day's rate (checked against hand computation), the missing-rate error, rollover caps, the rates
import over real HTTP (operators only) and from the CLI, and migration 1300 on a ledger written
by the previous release."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

import httpx
import pytest
from clickhouse_connect.driver.client import Client
from typer.testing import CliRunner

from spendstream.alerts.adjust import budget_figures, carry, daily_spend
from spendstream.alerts.config import Alerting, load_alerting
from spendstream.alerts.message import render
from spendstream.auth.roles import Principal, Role
from spendstream.cli.root import app
from spendstream.config import ConfigError, Settings
from spendstream.currency import MissingRate, parse_rates_csv
from spendstream.currency.http import rates_router
from spendstream.currency.report import spend_in_currency
from spendstream.currency.store import currency_table, store_rates, stored_rates
from spendstream.dashboard.burndown import burndown
from spendstream.errors import InputError
from spendstream.events import UsageEvent
from spendstream.money import format_money, format_usd
from spendstream.pricing import default_pricer
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from spendstream.sinks.ledger import LedgerEntry, LedgerWriter
from spendstream.sinks.migrations import migrate as apply
from spendstream.worker.schema import MIGRATIONS, migrate
from tests.support.http_app import ServedApp, TokenAuthenticator

pytestmark = pytest.mark.integration
PRICER = default_pricer()
NOW = datetime(2026, 12, 9, 12, tzinfo=UTC)
RATES = "date,currency,rate\n2026-12-01,EUR,0.9\n2026-12-04,EUR,0.9213\n2026-12-07,EUR,0.95\n"


def event(at: datetime, tokens: int = 1_000_000, team: str = "search") -> UsageEvent:
    return UsageEvent(
        event_time=at,
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=tokens,
        output_tokens=tokens // 10,
        tags={"team": team},
    )


def write(client: Client, *events: UsageEvent) -> Decimal:
    entries = [LedgerEntry(e, PRICER.rate(e)) for e in events]
    LedgerWriter(client, 1).write(entries)
    return sum((PRICER.rate(e).cost_total for e in events), Decimal(0))


def alerting(**budget: Any) -> Alerting:
    base = {"name": "eu", "scope": {"team": "search"}, "limit": "100", "forecast": False}
    return load_alerting(Settings(budgets=[{**base, **budget}]))


def test_a_budget_in_euros_converts_each_local_day_at_its_rate(ledger_client: Client) -> None:
    store_rates(ledger_client, parse_rates_csv(RATES), "test.csv", "me")
    # 3 Dec 23:30 UTC is already 4 Dec in Paris: it converts at the 4 Dec rate.
    dec1 = write(ledger_client, event(datetime(2026, 12, 1, 9, tzinfo=UTC)))
    dec4 = write(
        ledger_client,
        event(datetime(2026, 12, 3, 23, 30, tzinfo=UTC)),
        event(datetime(2026, 12, 4, 10, tzinfo=UTC), tokens=3_000_000),
    )
    dec6 = write(ledger_client, event(datetime(2026, 12, 6, 8, tzinfo=UTC)))  # Sunday: 4 Dec
    dec8 = write(ledger_client, event(datetime(2026, 12, 8, 8, tzinfo=UTC), tokens=2_000_000))
    write(ledger_client, event(datetime(2026, 12, 8, 8, tzinfo=UTC), team="other"))
    config = alerting(currency="EUR", timezone="Europe/Paris", period="month")
    (figures,) = budget_figures(ClientReader(ledger_client), config.budgets, config, NOW)
    by_hand = (
        dec1 * Decimal("0.9")
        + dec4 * Decimal("0.9213")
        + dec6 * Decimal("0.9213")
        + dec8 * Decimal("0.95")
    )
    assert figures.spend == by_hand and figures.spend > 0
    assert figures.percent == (by_hand * 100 / 100).quantize(Decimal("0.01"))
    assert figures.converted is not None
    assert figures.converted.describe() == (
        "daily rates of 2026-12-01 to 2026-12-07, latest 1 USD = 0.95 EUR on 2026-12-07"
    )
    _, body = render("threshold", 50, figures, {}, "SELECT 1")
    assert "of €100.00 limit" in body and "Rate: spend converted from USD at daily rates" in body
    # The dashboard's burn-down ends where the figures do, bucket by bucket at each day's rate.
    chart = burndown(ClientReader(ledger_client), config.budgets[0], NOW, currency=config.currency)
    assert chart["spend"] == by_hand and chart["currency"] == "EUR"
    assert chart["rate"] == figures.converted.describe()


def test_a_day_without_a_rate_is_an_error_naming_it(ledger_client: Client) -> None:
    store_rates(ledger_client, parse_rates_csv(RATES), "test.csv", "me")
    write(ledger_client, event(datetime(2026, 11, 30, 12, tzinfo=UTC)))  # before any rate
    config = alerting(currency="EUR", period="quarter", fiscal_year_start=10)
    reader = ClientReader(ledger_client)
    with pytest.raises(MissingRate, match="in force on 2026-11-30"):
        budget_figures(reader, config.budgets, config, NOW)
    missing: list[MissingRate] = []
    assert budget_figures(reader, config.budgets, config, NOW, missing) == []
    assert [e.day for e in missing] == [date(2026, 11, 30)]
    # A fixed rate is in force every day.
    fixed = load_alerting(
        Settings(
            budgets=[{"name": "eu", "limit": "100", "currency": "EUR", "period": "quarter"}],
            currency={"fixed_rates": {"EUR": "0.5"}},
        )
    )
    (figures,) = budget_figures(reader, fixed.budgets, fixed, NOW)
    assert figures.converted is not None and figures.converted.rates[0].fixed


def test_rollover_carries_last_periods_balance_capped(ledger_client: Client) -> None:
    assert carry(alerting(rollover_cap="30").budgets[0], Decimal("80")) == 20
    assert carry(alerting(rollover_cap="30").budgets[0], Decimal("10")) == 30  # capped up
    assert carry(alerting(rollover_cap="30").budgets[0], Decimal("190")) == -30  # capped down
    november = write(
        ledger_client,
        *(event(datetime(2026, 11, 10 + i, tzinfo=UTC), tokens=10_000_000) for i in range(5)),
    )
    write(ledger_client, event(datetime(2026, 12, 2, tzinfo=UTC)))
    limit = (november * 2).quantize(Decimal("0.01"))  # half of it unused in November
    config = alerting(limit=str(limit), rollover_cap=str(limit / 4), period="month")
    (figures,) = budget_figures(ClientReader(ledger_client), config.budgets, config, NOW)
    assert figures.carried == limit / 4  # unused limit - november > cap
    assert figures.limit == limit + limit / 4
    _, body = render("threshold", 50, figures, {}, "SELECT 1")
    assert "Rollover: " in body and "carried from the previous period" in body


def test_rollover_and_currency_config_errors() -> None:
    with pytest.raises(ConfigError) as error:
        load_alerting(
            Settings(
                budgets=[
                    {"name": "a", "limit": "10", "rollover_cap": "10"},
                    {"name": "b", "limit": "10", "currency": "EUR", "block_at": 100},
                    {"name": "c", "limit": "10", "currency": "USD"},
                ]
            )
        )
    text = str(error.value)
    assert "budgets[0]: Value error, rollover_cap (10) must be below the limit" in text
    assert "budgets[1]: Value error, block_at does not apply to a budget with currency" in text
    assert "budgets[2].currency = 'USD'" in text and "leave currency out" in text


PRINCIPALS = {
    "ops": Principal("oncall", Role.OPERATOR),
    "ops-team": Principal("team-oncall", Role.OPERATOR, frozenset({"search"})),
    "view": Principal("dash", Role.VIEWER),
}


@pytest.fixture
def rates_url(ledger_client: Client) -> Iterator[str]:
    router = rates_router(ClientReader(ledger_client), Settings().currency, lambda: ledger_client)
    with ServedApp(TokenAuthenticator(PRINCIPALS), router) as served:
        yield f"{served.url}/rates"


def test_http_import_needs_an_unscoped_operator(rates_url: str, ledger_client: Client) -> None:
    def post(token: str, text: str) -> httpx.Response:
        body = {"csv": text, "source": "dec.csv"}
        return httpx.post(rates_url, json=body, headers={"Authorization": f"Bearer {token}"})

    assert post("view", RATES).status_code == 403
    assert post("ops-team", RATES).status_code == 403
    assert stored_rates(ClientReader(ledger_client), "EUR") == []
    bad = post("ops", "date,currency,rate\n2026-12-01,EUR,x\n")
    assert bad.status_code == 400 and "dec.csv line 2: rate" in bad.json()["detail"]
    done = post("ops", RATES)
    assert done.status_code == 200
    assert done.json() == {
        "rows": 3,
        "currencies": {"EUR": {"first": "2026-12-01", "last": "2026-12-07"}},
    }
    # A corrected file replaces the days it names.
    assert post("ops", "date,currency,rate\n2026-12-04,EUR,0.93\n").status_code == 200
    shown = httpx.get(
        rates_url, params={"currency": "eur"}, headers={"Authorization": "Bearer view"}
    )
    assert shown.json()["rows"] == [
        ["2026-12-01", "0.9"],
        ["2026-12-04", "0.93"],
        ["2026-12-07", "0.95"],
    ]
    who = ledger_client.query("SELECT DISTINCT imported_by FROM fx_rates FINAL").result_rows
    assert sorted(r[0] for r in who) == ["oncall"]


def test_cli_imports_rates_without_a_worker(tmp_path: Path) -> None:
    config = tmp_path / "spendstream.toml"
    config.write_text(f'[clickhouse]\ndsn = "chdb://{tmp_path / "ch"}"\n')
    rates = tmp_path / "dec.csv"
    rates.write_text(RATES)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:  # `migrate` makes the ledger: other commands create none (tests/test_cli_no_ledger.py)
        assert CliRunner().invoke(app, ["migrate", "--config", str(config)]).exit_code == 0
        done = CliRunner().invoke(app, ["rates", "import", str(rates), "--config", str(config)])
        assert done.exit_code == 0, done.output
        assert "imported 3 rates (EUR 2026-12-01 to 2026-12-07)" in done.output
        rates.write_text("date,currency,rate\n2026-12-01,EURO,1\n")
        refused = CliRunner().invoke(app, ["rates", "import", str(rates), "--config", str(config)])
        assert refused.exit_code == 2 and "line 2: currency" in refused.output
        shown = CliRunner().invoke(app, ["rates", "show", "EUR", "-f", "csv", "-c", str(config)])
        assert shown.exit_code == 0 and "2026-12-07,0.95" in shown.output
        client = connect(f"chdb://{tmp_path / 'ch'}", "spendstream")
        try:
            spent = write(client, event(datetime(2026, 12, 7, 12, tzinfo=UTC)))
        finally:
            client.close()  # one chDB directory per process at a time
        period = ["--since", "2026-12-01", "--until", "2026-12-09", "-c", str(config)]
        report = CliRunner().invoke(app, ["report", "--currency", "EUR", *period])
        assert report.exit_code == 0, report.output
        assert format_money(spent * Decimal("0.95"), "EUR") in report.output
        assert format_usd(spent) in report.output and "0.95 EUR on 2026-12-07" in report.output
    finally:
        root.handlers[:], root.level = handlers, level


def test_migration_1300_on_tables_of_the_previous_release(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'clickhouse'}", "spendstream")
    apply(client, [m for m in MIGRATIONS if m.version != 1300])
    spent = write(client, *(event(datetime(2026, 12, d, tzinfo=UTC)) for d in range(1, 8)))
    query = "SELECT count(), sum(cost_total) FROM ledger FINAL"
    before = client.query(query).result_rows
    assert migrate(client) == [1300]
    assert client.query(query).result_rows == before and before[0][1] == spent
    assert client.query("SELECT count() FROM fx_rates").result_rows == [(0,)]
    assert migrate(client) == []


def test_report_in_euros_converts_each_utc_day(ledger_client: Client) -> None:
    store_rates(ledger_client, parse_rates_csv(RATES), "test.csv", "me")
    search = [
        write(ledger_client, event(datetime(2026, 12, 1, 9, tzinfo=UTC))),
        write(ledger_client, event(datetime(2026, 12, 5, 23, 59, tzinfo=UTC), tokens=7_000_000)),
    ]
    other = write(ledger_client, event(datetime(2026, 12, 8, 1, tzinfo=UTC), team="other"))
    reader = ClientReader(ledger_client)
    table = currency_table(reader, Settings().currency, "eur")
    since, until = datetime(2026, 12, 1, tzinfo=UTC), NOW
    report = spend_in_currency(reader, table, ["team"], since, until)
    assert report.columns[:4] == ["team", "cost_usd", "cost_eur", "rate"]
    rows = {r[0]: r for r in report.rows}
    assert rows["search"][1] == search[0] + search[1]
    assert rows["search"][2] == search[0] * Decimal("0.9") + search[1] * Decimal("0.9213")
    assert rows["other"][2] == other * Decimal("0.95")
    assert rows["other"][3] == "1 USD = 0.95 EUR on 2026-12-07"
    assert [r[0] for r in report.rows] == sorted(rows, key=lambda t: -rows[t][1])
    daily = spend_in_currency(reader, table, ["team"], since, until, granularity="day")
    assert sum(r[3] for r in daily.rows) == sum(r[2] for r in report.rows)
    with pytest.raises(InputError, match="granularity 'week'"):
        spend_in_currency(reader, table, ["team"], since, until, granularity="week")
    write(ledger_client, event(datetime(2026, 11, 30, 12, tzinfo=UTC)))
    with pytest.raises(MissingRate, match="2026-11-30"):
        spend_in_currency(reader, table, ["team"], datetime(2026, 11, 1, tzinfo=UTC), until)


# A zone name written to break out of a quoted SQL literal if it were spliced into the query.
HOSTILE_ZONE = "UTC'), 1 FROM ledger; DROP TABLE ledger; SELECT toDate(now(), 'UTC"


class RecordingReader(ClientReader):
    """A ClientReader that keeps each statement and its bound parameters."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        self.sent.append((sql, dict(parameters or {})))
        return super().query(sql, parameters)


def test_the_budget_time_zone_is_bound_never_spliced(ledger_client: Client) -> None:
    store_rates(ledger_client, parse_rates_csv(RATES), "test.csv", "me")
    write(ledger_client, event(datetime(2026, 12, 8, 8, tzinfo=UTC)))
    # The configuration refuses such a zone ...
    with pytest.raises(ConfigError, match="unknown time zone"):
        alerting(currency="EUR", timezone=HOSTILE_ZONE)
    # ... and were one to get past it, it reaches ClickHouse as a bound value, not as SQL.
    budget = alerting(currency="EUR").budgets[0].model_copy(update={"timezone": HOSTILE_ZONE})
    reader = RecordingReader(ledger_client)
    start, end = datetime(2026, 12, 1, tzinfo=UTC), NOW
    with pytest.raises(Exception, match=r"(?i)time ?zone") as refused:
        daily_spend(reader, budget, start, end)
    assert "Syntax error" not in str(refused.value)
    sent = len(reader.sent)
    with pytest.raises(ZoneInfoNotFoundError):  # the burn-down's period bounds: before any SQL
        burndown_chart(reader, budget)
    assert len(reader.sent) == sent == 1
    for sql, parameters in reader.sent:
        assert HOSTILE_ZONE not in sql and "DROP TABLE" not in sql
        assert HOSTILE_ZONE in parameters.values()
    count = ledger_client.query("SELECT count() FROM ledger FINAL").result_rows[0][0]
    assert count == 1  # the ledger is intact
    # The same statements with a real zone name answer (so the refusal above was the zone).
    paris = budget.model_copy(update={"timezone": "Europe/Paris"})
    assert sum(daily_spend(reader, paris, start, end).values(), Decimal(0)) > 0


def burndown_chart(reader: ClientReader, budget: Any) -> Any:
    return burndown(reader, budget, NOW, currency=Settings().currency)
