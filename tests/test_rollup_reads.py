"""Reports, audits, budget figures and their rollup reads equal the ledger to the last digit,
over periods cut anywhere (mid-hour, mid-day, under an hour); the lean-rollup migration keeps
every total of a ledger written by the previous schema."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.alerts.config import AlertsConfig, BudgetConfig
from spendstream.alerts.figures import compute_figures
from spendstream.dashboard.burndown import burndown, burndown_sql
from spendstream.pricing import default_pricer
from spendstream.sinks import migrations as ledger_schema
from spendstream.sinks.access import ClientReader
from spendstream.sinks.audits import AUDITS
from spendstream.sinks.client import connect
from spendstream.sinks.ledger import LedgerEntry, LedgerWriter
from spendstream.sinks.price_versions import PRICE_VERSION_COLUMNS, next_price_version
from spendstream.sinks.queries import spend_report_sql
from spendstream.sinks.scopes import scope_sql
from spendstream.sinks.windows import window_parameters
from spendstream.worker.schema import MIGRATIONS, migrate
from tests.support import ledger_data
from tests.support.units import write_as_before_units

pytestmark = pytest.mark.integration

START = ledger_data.START
PERIODS = (
    (START, START + timedelta(days=ledger_data.DAYS)),  # whole days
    (START + timedelta(hours=5, minutes=17), START + timedelta(days=2, hours=7, seconds=1.5)),
    (START + timedelta(hours=1, minutes=10), START + timedelta(hours=1, minutes=50)),
    (START + timedelta(hours=22, minutes=30), START + timedelta(days=1, hours=3)),
)
# Required-tag sets the tag audits answer from rollups (lean, per-user, full; a repeated tag).
TAG_SETS = (("team", "app"), ("user",), ("feature", "env", "user"), ("app", "team", "app"))
# The previous schema's price_versions: every column but claimed_by (migration 10).
PREVIOUS_PRICE_VERSION_COLUMNS = PRICE_VERSION_COLUMNS[:-1]
MEASURES = (
    "count() AS events, sum(request_count) AS requests, sum(cost_total) AS cost_usd, "
    "sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
    "sum(cache_read_tokens) AS cache_read_tokens, countIf(NOT priced) AS unpriced_events"
)


def rows(client: Client, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted(tuple(row) for row in client.query(sql, parameters=params).result_rows)


def ledger_report(client: Client, dims: str, since: datetime, until: datetime) -> list[Any]:
    """The reference: the same sums straight from ``ledger FINAL``."""
    return rows(
        client,
        f"SELECT {dims}, sum(cost_total), count(), sum(input_tokens), sum(output_tokens), "
        f"sum(cache_read_tokens), countIf(NOT priced) FROM ledger FINAL "
        "WHERE event_time >= {since:DateTime64(3)} AND event_time < {until:DateTime64(3)} "
        f"GROUP BY {dims}",
        {"since": since, "until": until},
    )


def ledger_by_day(client: Client, dims: str, since: datetime, until: datetime) -> list[Any]:
    return rows(
        client,
        f"SELECT toDate(event_time) AS day, {dims}, count(), sum(request_count), "
        "sum(cost_total), sum(cost_total) / sum(request_count) FROM ledger FINAL "
        "WHERE event_time >= {since:DateTime64(3)} AND event_time < {until:DateTime64(3)} "
        f"GROUP BY day, {dims}",
        {"since": since, "until": until},
    )


def assert_reads_match_ledger(client: Client) -> None:
    for since, until in PERIODS:
        for by in (["team", "model"], ["user"], ["feature", "env"], ["operation"]):
            sql, params = spend_report_sql(by, since, until, limit=10_000)
            assert rows(client, sql, params) == ledger_report(client, ", ".join(by), since, until)
        for name, dims in (
            ("cost_per_request", "team, app"),
            ("cost_per_user", "user"),
            ("cost_per_feature", "feature"),
            ("cost_per_model", "provider, model"),
        ):
            audit = AUDITS[name]
            got = rows(client, audit.sql, audit.parameters(since, until))
            assert got == ledger_by_day(client, dims, since, until), (name, since, until)
        trends = AUDITS["token_trends"]
        got = rows(client, trends.sql, trends.parameters(since, until))
        assert got == rows(
            client,
            "SELECT toDate(event_time) AS day, provider, model, count(), sum(request_count), "
            "sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), "
            "sum(cache_write_tokens), sum(reasoning_tokens) FROM ledger FINAL "
            "WHERE event_time >= {since:DateTime64(3)} AND event_time < {until:DateTime64(3)} "
            "GROUP BY day, provider, model",
            {"since": since, "until": until},
        )
        for required in TAG_SETS:
            for name in ("unallocated_spend", "tag_coverage"):
                audit = AUDITS[name]
                assert audit.plan(required)[1]  # over the rollups
                ledger_params = {"since": since, "until": until, "required": list(required)}
                got = rows(
                    client, audit.sql_for(required), audit.parameters(since, until, required)
                )
                assert got == rows(client, audit.template, ledger_params), (name, required)
                assert got, (name, required)  # the test data leaves tags out


def test_tag_audits_read_the_ledger_for_tags_no_rollup_keeps() -> None:
    for name in ("unallocated_spend", "tag_coverage"):
        audit = AUDITS[name]
        for required in (("team", "project"), ("model",), ()):
            assert audit.plan(required) == (audit.template, False), required
            assert "tags[" in audit.sql_for(required)
        assert "ledger FINAL" in audit.sql and "rollup_day_lean" in audit.sql  # edges + days


def test_cut_points() -> None:
    since, until = PERIODS[1]
    cuts = window_parameters(since, until)
    assert [cuts[k] - START for k in ("h0", "d0", "d1", "h1")] == [
        timedelta(hours=6),
        timedelta(days=1),
        timedelta(days=2),
        timedelta(days=2, hours=7),
    ]
    short = window_parameters(*PERIODS[2])
    assert short["h0"] == short["d0"] == short["d1"] == short["h1"]  # all from the ledger


def test_rollup_reads_equal_the_ledger(ledger_client: Client) -> None:
    ledger_data.fill_ledger(ledger_client, ledger_data.generate(4_000))
    assert_reads_match_ledger(ledger_client)


def test_hour_and_minute_buckets_equal_the_ledger(ledger_client: Client) -> None:
    """A bucket finer than a day never reads a coarser rollup: every hour of a whole UTC day
    (the day rollup's rows) keeps its own row, as do minutes of whole hours."""
    ledger_data.fill_ledger(ledger_client, ledger_data.generate(2_000, seed=12))
    for since, until in PERIODS:
        for granularity, unit in (("hour", "toStartOfHour"), ("minute", "toStartOfMinute")):
            for by in (["team"], ["user"], ["feature", "env"]):
                sql, params = spend_report_sql(
                    by, since, until, granularity=granularity, limit=1_000_000
                )
                dims = ", ".join(by)
                expected = rows(
                    ledger_client,
                    f"SELECT {unit}(event_time) AS p, {dims}, sum(cost_total), count(), "
                    "sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), "
                    "countIf(NOT priced) FROM ledger FINAL WHERE event_time >= "
                    "{since:DateTime64(3)} AND event_time < {until:DateTime64(3)} "
                    f"GROUP BY p, {dims}",
                    {"since": since, "until": until},
                )
                got = rows(ledger_client, sql, params)
                assert got == expected and got, (granularity, by, since, until)


def test_lean_rollup_migration_keeps_every_total(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'old'}", "spendstream")
    # The previous schema (migrations 1-3, unchanged DDL) written by the previous writer, which
    # refreshed the full hour and day rollups only.
    previous = [m for m in ledger_schema.MIGRATIONS if m.version < 10]
    assert ledger_schema.migrate(client, previous) == [1, 2, 3]
    pricer = default_pricer()
    client.insert(
        "price_versions",
        [[1, "stream", pricer.catalog_digest, START, None, None, ""]],
        column_names=PREVIOUS_PRICE_VERSION_COLUMNS,
    )
    events = ledger_data.generate(3_000, seed=5)
    # ... and before usage units (no unit columns until migration 40)
    write_as_before_units(client, [LedgerEntry(event, pricer.rate(event)) for event in events], 1)
    totals = (
        "SELECT (SELECT sum(cost_total) FROM ledger FINAL), (SELECT count() FROM ledger FINAL), "
        "(SELECT sum(cost_total) FROM rollup_minute FINAL), "
        "(SELECT sum(cost_total) FROM rollup_hour FINAL), "
        "(SELECT sum(events) FROM rollup_day FINAL)"
    )
    before = client.query(totals).result_rows[0]
    assert before[1] == len(events) and before[0] == before[2] == before[3]

    # Everything after the previous release's three ledger migrations, 10 and 11 among them.
    pending = sorted(m.version for m in MIGRATIONS if m.version > 3)
    assert {10, 11} <= set(pending) and migrate(client) == pending
    assert client.query(totals).result_rows[0] == before
    for unit in ("hour", "day"):
        lean = client.query(
            f"SELECT sum(cost_total), sum(events) FROM rollup_{unit}_lean FINAL"
        ).result_rows[0]
        assert lean == (before[0], before[1])
        per_team = (
            "SELECT window_start, team, model, sum(cost_total) FROM {t} FINAL GROUP BY 1, 2, 3"
        )
        assert rows(client, per_team.format(t=f"rollup_{unit}_lean"), {}) == rows(
            client, per_team.format(t=f"rollup_{unit}"), {}
        )
    user_day = (
        "SELECT window_start, user, sum(cost_total), sum(events) FROM {t} FINAL GROUP BY 1, 2"
    )
    assert rows(client, user_day.format(t="rollup_day_user"), {}) == rows(
        client, user_day.format(t="rollup_day"), {}
    )
    assert_reads_match_ledger(client)
    # After the upgrade new writes keep the lean rollups in step, and versions stay unique.
    more = ledger_data.generate(500, seed=6)
    version = next_price_version(client, "stream", pricer.catalog_digest)
    assert version == 2
    LedgerWriter(client, version).write([LedgerEntry(e, pricer.rate(e)) for e in more])
    assert_reads_match_ledger(client)
    everything = client.query(totals).result_rows[0]
    assert everything[1] == len(events) + len(more)
    lean_day = client.query("SELECT sum(cost_total) FROM rollup_day_lean FINAL").result_rows
    assert lean_day[0][0] == everything[0]


def test_budget_figures_equal_the_ledger(ledger_client: Client) -> None:
    ledger_data.fill_ledger(ledger_client, ledger_data.generate(3_000, seed=8))
    budgets = [
        BudgetConfig.model_validate(budget)
        for budget in (
            {"name": "all", "period": "month", "limit": "1000"},
            {"name": "search", "scope": {"team": "search"}, "period": "week", "limit": "100"},
            {"name": "ann", "scope": {"user": "ann", "team": "support"}, "limit": "10"},
            {"name": "qa-day", "scope": {"feature": "qa"}, "period": "day", "limit": "10"},
            {"name": "web-ann", "scope": {"app": ["web"], "user": "ann"}, "limit": "10"},
        )
    ]
    now = START + timedelta(days=2, hours=13, minutes=41, seconds=7)
    figures = compute_figures(ClientReader(ledger_client), budgets, AlertsConfig(), now)
    for figure in figures:
        bound: dict[str, Any] = {}
        w, scope = figure.windows, scope_sql(figure.budget.scope_filters, bound)

        def spend(
            a: datetime, b: datetime, scope: str = scope, bound: dict[str, Any] = bound
        ) -> Decimal:
            found = ledger_client.query(
                f"SELECT sum(cost_total) FROM ledger FINAL WHERE {scope} "
                "AND event_time >= {a:DateTime64(3)} AND event_time < {b:DateTime64(3)}",
                parameters={**bound, "a": a, "b": b},
            ).result_rows[0][0]
            return Decimal(found or 0)

        assert figure.spend == spend(w.period_start, w.period_end) > 0, figure.budget.name
        assert figure.burn_spend == spend(w.burn_start, w.now)
        assert figure.recent_spend == spend(w.spike_start, w.now)
        assert figure.baseline_spend == spend(w.baseline_start, w.spike_start)


@pytest.mark.parametrize(
    "budget",
    [
        {"name": "all", "period": "month", "limit": "1000"},
        {"name": "paris", "scope": {"team": "search"}, "timezone": "Europe/Paris", "limit": "9"},
        {"name": "ann-week", "scope": {"user": "ann"}, "period": "week", "limit": "10"},
        {"name": "qa-day", "scope": {"feature": "qa"}, "period": "day", "limit": "10"},
        {"name": "kolkata", "timezone": "Asia/Kolkata", "limit": "10"},  # +05:30: ledger only
        {"name": "tagged", "scope": {"project": "x"}, "limit": "10"},  # no rollup has it
    ],
    ids=lambda budget: budget["name"],
)
def test_burndowns_equal_the_ledger(ledger_client: Client, budget: dict[str, Any]) -> None:
    events = ledger_data.generate(3_000, seed=9)
    tagged = [e.model_copy(update={"tags": {**e.tags, "project": "x"}}) for e in events[::7]]
    ledger_data.fill_ledger(ledger_client, [*events[1::7], *tagged])
    config = BudgetConfig.model_validate(budget)
    now = START + timedelta(days=2, hours=13, minutes=41, seconds=7)
    teams = {"t": ["search", "support"]}
    answer = burndown(ClientReader(ledger_client), config, now, "team IN {t:Array(String)}", teams)
    start, end = answer["period_start"], min(now, answer["period_end"])
    unit = "toStartOfHour" if config.period == "day" else "toStartOfDay"
    bound: dict[str, Any] = {}
    reference = ledger_client.query(
        f"SELECT {unit}(event_time, '{config.timezone}') AS b, sum(cost_total) FROM ledger FINAL "
        f"WHERE {scope_sql(config.scope_filters, bound)} AND team IN {{t:Array(String)}} "
        "AND event_time >= {a:DateTime64(3)} AND event_time < {z:DateTime64(3)} GROUP BY b "
        "ORDER BY b",
        parameters={**bound, **teams, "a": start, "z": end},
    ).result_rows
    running, expected = Decimal(0), []
    for bucket, spend in reference:
        running += spend
        expected.append([bucket, running])
    assert answer["points"] == expected and expected, budget["name"]
    uses_rollup = "rollup_hour" in burndown_sql(config, start, end, {})
    assert uses_rollup == (budget["name"] not in ("kolkata", "tagged"))
