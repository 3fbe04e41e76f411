"""Audit queries on real chDB: every registered audit against results computed in Python.

The ``ledger_client`` fixture and ``generate``/``fill_ledger`` helpers are shared with the FOCUS
and reprice tests.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Hashable
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal, localcontext
from pathlib import Path
from typing import Any

import pytest
import typer
from clickhouse_connect.driver.client import Client
from typer.testing import CliRunner

from spendstream.cli.ledger import audit_app
from spendstream.events import UsageEvent
from spendstream.pricing import Pricer, Rating, default_pricer
from spendstream.sinks.audits import AUDITS, render_sql
from tests.support.ledger_data import (
    DAYS,
    REQUIRED,
    START,
    fill_ledger,
    generate,
    write_config,
)

pytestmark = pytest.mark.integration

ATTO = Decimal("1e-18")
PCT = Decimal("0.0001")


def truncate(value: Decimal, quantum: Decimal) -> Decimal:
    with localcontext() as context:
        context.prec = 80
        return value.quantize(quantum, rounding=ROUND_DOWN)


def ratio(part: Decimal | int, whole: Decimal | int, quantum: Decimal) -> Decimal:
    with localcontext() as context:
        context.prec = 80
        return truncate(Decimal(part) / Decimal(whole), quantum)


Rated = list[tuple[UsageEvent, Rating]]


def grouped(rated: Rated, key: Callable[[UsageEvent], Hashable]) -> dict[Any, Rated]:
    groups: dict[Any, Rated] = defaultdict(list)
    for event, rating in rated:
        groups[key(event)].append((event, rating))
    return groups


def day(event: UsageEvent) -> date:
    return event.event_time.date()


def cost_rows(rated: Rated, dims: tuple[str, ...]) -> dict[Any, tuple[Any, ...]]:
    def key(event: UsageEvent) -> tuple[Any, ...]:
        values = {"provider": event.provider, "model": event.model}
        return (day(event), *(values.get(dim, event.tag(dim)) for dim in dims))

    expected = {}
    for group, items in grouped(rated, key).items():
        cost = sum((rating.cost_total for _, rating in items), Decimal(0))
        requests = sum(event.request_count for event, _ in items)
        expected[group] = (len(items), requests, cost, ratio(cost, requests, ATTO))
    return expected


def token_rows(rated: Rated) -> dict[Any, tuple[Any, ...]]:
    expected = {}
    for group, items in grouped(rated, lambda e: (day(e), e.provider, e.model)).items():
        events = [event for event, _ in items]
        expected[group] = (
            len(events),
            sum(e.request_count for e in events),
            sum(e.input_tokens for e in events),
            sum(e.output_tokens for e in events),
            sum(e.cache_read_tokens for e in events),
            sum(e.cache_write_tokens for e in events),
            sum(e.reasoning_tokens for e in events),
        )
    return expected


def quantile_exact(values: list[int], level: float) -> int:
    ordered = sorted(values)
    return ordered[min(int(level * len(ordered)), len(ordered) - 1)]


def prompt_rows(rated: Rated) -> dict[Any, tuple[Any, ...]]:
    expected = {}
    for group, items in grouped(rated, lambda e: (day(e), e.tag("feature"))).items():
        tokens = [event.input_tokens for event, _ in items]
        expected[group] = (
            len(tokens),
            quantile_exact(tokens, 0.5),
            quantile_exact(tokens, 0.95),
            max(tokens),
        )
    return expected


def cache_rows(rated: Rated, pricer: Pricer) -> dict[Any, tuple[Any, ...]]:
    """Savings from the pricer: the same event re-rated with its cached tokens made uncached."""
    priced = [(event, rating) for event, rating in rated if rating.priced]
    uncached = {
        (rating.price_ref, event.batch)
        for event, rating in priced
        if event.input_tokens > event.cache_read_tokens + event.cache_write_tokens
    }
    cached = [item for item in priced if item[0].cache_read_tokens + item[0].cache_write_tokens > 0]
    expected = {}
    for group, items in grouped(cached, lambda e: (day(e), e.provider, e.model)).items():
        gross = premium = Decimal(0)
        without_rate = 0
        for event, rating in items:
            if (rating.price_ref, event.batch) not in uncached:
                without_rate += 1
                continue
            no_read = pricer.rate(event.model_copy(update={"cache_read_tokens": 0}))
            no_write = pricer.rate(event.model_copy(update={"cache_write_tokens": 0}))
            gross += no_read.cost_input - rating.cost_input - rating.cost_cache_read
            premium += rating.cost_cache_write - (no_write.cost_input - rating.cost_input)
        events = [event for event, _ in items]
        expected[group] = (
            sum(e.cache_read_tokens for e in events),
            sum(e.cache_write_tokens for e in events),
            sum((r.cost_cache_read for _, r in items), Decimal(0)),
            sum((r.cost_cache_write for _, r in items), Decimal(0)),
            gross,
            premium,
            gross - premium,
            without_rate,
        )
    return expected


def total_cost(items: Rated) -> Decimal:
    return sum((rating.cost_total for _, rating in items), Decimal(0))


def unallocated_rows(rated: Rated) -> dict[Any, tuple[Any, ...]]:
    total = total_cost(rated)

    def missing(event: UsageEvent) -> tuple[str, ...]:
        return tuple(tag for tag in REQUIRED if not event.tag(tag))

    return {
        (group,): (len(items), total_cost(items), ratio(total_cost(items) * 100, total, PCT))
        for group, items in grouped(rated, missing).items()
        if group
    }


def coverage_rows(rated: Rated) -> dict[Any, tuple[Any, ...]]:
    expected = {}
    for tag in REQUIRED:
        tagged = [(event, rating) for event, rating in rated if event.tag(tag)]
        expected[(tag,)] = (
            len(rated),
            len(tagged),
            ratio(len(tagged) * 100, len(rated), PCT),
            total_cost(rated),
            total_cost(tagged),
            ratio(total_cost(tagged) * 100, total_cost(rated), PCT),
        )
    return expected


KEY_COLUMNS = {
    "cost_per_request": 3,
    "cost_per_user": 2,
    "cost_per_feature": 2,
    "cost_per_model": 3,
    "token_trends": 3,
    "prompt_length_by_feature": 2,
    "cache_savings": 3,
    "unallocated_spend": 1,
    "tag_coverage": 1,
    "cost_by_unit": 4,
}


def unit_rows(rated: Rated) -> dict[Any, tuple[Any, ...]]:
    """Per day, model and driver ('tokens' or a unit): events, quantity, cost, unpriced."""
    expected: dict[Any, list[Any]] = {}
    for event, rating in rated:
        drivers = []
        token_cost = rating.cost_total - rating.cost_units
        if event.input_tokens + event.output_tokens > 0 or token_cost != 0:
            drivers.append(
                ("tokens", Decimal(event.input_tokens + event.output_tokens), token_cost)
            )
        costs = {unit.unit: unit.cost for unit in rating.units}
        drivers += [(u, q, costs.get(u, Decimal(0))) for u, q in event.units.items()]
        for unit, quantity, cost in drivers:
            row = expected.setdefault((day(event), event.provider, event.model, unit), [0, 0, 0, 0])
            row[0] += 1
            row[1] += quantity
            row[2] += cost
            row[3] += 0 if rating.priced else 1
    return {key: tuple(row) for key, row in expected.items()}


def expected_rows(name: str, rated: Rated, pricer: Pricer) -> dict[Any, tuple[Any, ...]]:
    builders: dict[str, Callable[[], dict[Any, tuple[Any, ...]]]] = {
        "cost_per_request": lambda: cost_rows(rated, ("team", "app")),
        "cost_per_user": lambda: cost_rows(rated, ("user",)),
        "cost_per_feature": lambda: cost_rows(rated, ("feature",)),
        "cost_per_model": lambda: cost_rows(rated, ("provider", "model")),
        "token_trends": lambda: token_rows(rated),
        "prompt_length_by_feature": lambda: prompt_rows(rated),
        "cache_savings": lambda: cache_rows(rated, pricer),
        "unallocated_spend": lambda: unallocated_rows(rated),
        "tag_coverage": lambda: coverage_rows(rated),
        "cost_by_unit": lambda: unit_rows(rated),
    }
    return builders[name]()


def as_map(name: str, rows: list[list[Any]]) -> dict[Any, tuple[Any, ...]]:
    width = KEY_COLUMNS[name]
    return {
        tuple(tuple(v) if isinstance(v, list) else v for v in row[:width]): tuple(row[width:])
        for row in rows
    }


@pytest.fixture
def audited(ledger_client: Client) -> tuple[Client, Rated, datetime, datetime]:
    """1,500 events in the window, plus events just outside it that audits must ignore."""
    events = generate(1_500)
    outside = [
        UsageEvent(event_time=moment, provider="openai", model="gpt-4o", input_tokens=9, tags={})
        for moment in (START - timedelta(milliseconds=1), START + timedelta(days=DAYS))
    ]
    rated = fill_ledger(ledger_client, events + outside)
    return ledger_client, rated[: len(events)], START, START + timedelta(days=DAYS)


def test_every_audit_returns_the_rows_computed_in_python(
    audited: tuple[Client, Rated, datetime, datetime],
) -> None:
    client, rated, since, until = audited
    assert set(KEY_COLUMNS) == set(AUDITS)
    for name, audit in AUDITS.items():
        params = audit.parameters(since, until, REQUIRED)
        result = client.query(audit.sql, parameters=params)
        rows = [list(row) for row in result.result_rows]
        assert as_map(name, rows) == expected_rows(name, rated, default_pricer()), name
        # The literal form for `spendstream sql` gives the same rows.
        assert [list(row) for row in client.query(render_sql(audit.sql, params)).result_rows] == (
            rows
        ), name
    savings = as_map("cache_savings", rows_of(client, "cache_savings", since, until))
    assert sum(row[-1] for row in savings.values()) > 0  # batch calls have no derivable rate
    assert sum(row[-2] for row in savings.values()) > 0  # caching saved money overall


def rows_of(client: Client, name: str, since: datetime, until: datetime) -> list[list[Any]]:
    audit = AUDITS[name]
    result = client.query(audit.sql, parameters=audit.parameters(since, until, REQUIRED))
    return [list(row) for row in result.result_rows]


def test_audit_cli_lists_runs_and_shows(
    audited: tuple[Client, Rated, datetime, datetime], tmp_path: Path, chdb_path: Path
) -> None:
    client, rated, since, until = audited
    config = str(write_config(tmp_path, chdb_path))
    app = typer.Typer()
    app.add_typer(audit_app, name="audit")
    runner = CliRunner()

    listed = runner.invoke(app, ["audit", "list"])
    assert listed.exit_code == 0, listed.output
    assert all(name in listed.output for name in AUDITS)

    window = ["--since", since.isoformat(), "--until", until.isoformat()]
    ran = runner.invoke(
        app, ["audit", "run", "cost_per_model", *window, "--config", config, "--format", "json"]
    )
    assert ran.exit_code == 0, ran.output
    lines = [json.loads(line) for line in ran.output.splitlines()]
    by_key = {
        (date.fromisoformat(line["day"]), line["provider"], line["model"]): Decimal(
            line["cost_usd"]
        )
        for line in lines
    }
    expected = cost_rows(rated, ("provider", "model"))
    assert by_key == {key: values[2] for key, values in expected.items()}

    shown = runner.invoke(app, ["audit", "show", "tag_coverage", *window, "-r", "team"])
    assert shown.exit_code == 0, shown.output
    coverage = client.query(shown.output).result_rows
    assert [row[:3] for row in coverage] == [
        ("team", len(rated), coverage_rows(rated)[("team",)][1])
    ]

    unknown = runner.invoke(app, ["audit", "run", "nope", "--config", config])
    assert unknown.exit_code != 0
    assert "cost_per_user" in unknown.output


# prompt_length_by_feature before it read the insight cells: a grouped scan of ledger FINAL.
PROMPT_LENGTH_FROM_LEDGER = (
    "SELECT toDate(event_time) AS day, feature, count() AS events, "
    "quantileExact(0.5)(input_tokens) AS p50_input_tokens, "
    "quantileExact(0.95)(input_tokens) AS p95_input_tokens, max(input_tokens) AS max_input_tokens "
    "FROM ledger FINAL WHERE event_time >= {since:DateTime64(3)} "
    "AND event_time < {until:DateTime64(3)} AND /*scope*/1 GROUP BY day, feature "
    "ORDER BY day, feature"
)


def assert_audit_equals(
    client: Client, name: str, before: str, since: datetime, until: datetime
) -> None:
    """Audit ``name`` equals the SQL it replaced (``before``, with ``/*scope*/1``) over periods
    cut mid-hour (edges from the ledger), under an hour and whole; all spend and one team."""
    audit = AUDITS[name]
    periods = [
        (since, until),
        (since + timedelta(hours=5, minutes=17, seconds=3), until - timedelta(hours=7, minutes=41)),
        (since + timedelta(hours=30, minutes=5), since + timedelta(hours=30, minutes=50)),
    ]
    compared = 0
    for lo, hi in periods:
        for condition in ("1", "team = 'search'"):
            got = client.query(
                audit.scoped(condition), parameters=audit.parameters(lo, hi)
            ).result_rows
            want = client.query(
                before.replace("/*scope*/1", f"({condition})"),
                parameters={"since": lo, "until": hi},
            ).result_rows
            assert got == want, (name, lo, hi, condition)
            compared += len(got)
    assert compared > 20  # the comparison is not of empties


def test_prompt_length_from_the_cells_equals_the_ledger_scan(
    audited: tuple[Client, Rated, datetime, datetime],
) -> None:
    client, _rated, since, until = audited
    assert_audit_equals(client, "prompt_length_by_feature", PROMPT_LENGTH_FROM_LEDGER, since, until)
