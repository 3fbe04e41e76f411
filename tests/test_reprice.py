"""Re-rating on real chDB: a price change for one model, re-rated as a new price version."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from clickhouse_connect.driver.client import Client
from typer.testing import CliRunner

from spendstream.cli.ledger import reprice as reprice_command
from spendstream.config import load_settings
from spendstream.events import UsageEvent
from spendstream.money import format_usd
from spendstream.pricing import Pricer
from spendstream.pricing.catalog import load_catalog
from spendstream.pricing.overrides import Override
from spendstream.sinks.access import announce_worker
from spendstream.sinks.rerating import reprice
from tests.support import ledger_data as shared

pytestmark = pytest.mark.integration

# Fixtures shared with the audit tests.
fill_ledger = shared.fill_ledger
write_config = shared.write_config

DAY1 = datetime(2026, 10, 6, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
TEAMS = ("search", "support", "growth")
# USD per million input/output tokens, typed from the price pages, independent of the catalog.
OLD = {
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.60")),
    "claude-haiku-4-5": (Decimal("1.00"), Decimal("5.00")),
}
NEW_MINI = (Decimal("0.10"), Decimal("0.40"))
ATTO = Decimal("1e-18")
WIDE = {"COLUMNS": "250"}  # rich wraps table cells at the default 80 columns
PROVIDERS = {"gpt-4o-mini": "openai", "claude-haiku-4-5": "anthropic"}
CUT = Override(
    name="mini-cut", provider="openai", model="gpt-4o-mini", input=NEW_MINI[0], output=NEW_MINI[1]
)
INLINE_CUT = """
[[pricing.overrides]]
name = "mini-cut"
provider = "openai"
model = "gpt-4o-mini"
input = 0.10
output = 0.40
"""


def events_over_two_days(count: int) -> list[UsageEvent]:
    rng = random.Random(3)
    models = list(OLD)
    return [
        UsageEvent(
            event_time=DAY1 + timedelta(seconds=rng.randrange(0, 2 * 86_400)),
            provider=PROVIDERS[models[i % 2]],
            model=models[i % 2],
            input_tokens=rng.randrange(1, 30_000),
            output_tokens=rng.randrange(0, 3_000),
            tags={"team": TEAMS[i % 3], "app": "web"},
        )
        for i in range(count)
    ]


def cost(event: UsageEvent, prices: tuple[Decimal, Decimal]) -> Decimal:
    return (event.input_tokens * prices[0] + event.output_tokens * prices[1]) / 1_000_000


def expected_diffs(
    events: list[UsageEvent],
) -> dict[tuple[str, str, str], tuple[int, int, Decimal, Decimal]]:
    """(events, changed, old, new) per provider/model/team for the events of DAY1."""
    found: dict[tuple[str, str, str], list[UsageEvent]] = defaultdict(list)
    for event in events:
        if event.event_time < DAY2:
            found[(event.provider, event.model, event.tags["team"])].append(event)
    result = {}
    for key, items in found.items():
        old = sum((cost(e, OLD[e.model]) for e in items), Decimal(0))
        changed = key[1] == "gpt-4o-mini"
        new = sum((cost(e, NEW_MINI if changed else OLD[e.model]) for e in items), Decimal(0))
        result[key] = (len(items), len(items) if changed else 0, old, new)
    return result


def scalar(client: Client, sql: str) -> object:
    return client.query(sql).result_rows[0][0]


def test_reprice_supersedes_changed_rows_as_a_new_version(ledger_client: Client) -> None:
    client = ledger_client
    events = events_over_two_days(2_000)
    fill_ledger(client, events)
    all_old = sum((cost(e, OLD[e.model]) for e in events), Decimal(0))
    assert scalar(client, "SELECT sum(cost_total) FROM ledger FINAL") == all_old
    pricer = Pricer(load_catalog(), [CUT])

    dry = reprice(client, pricer, DAY1, DAY2, dry_run=True)
    assert dry.version is None and dry.changed > 0
    assert scalar(client, "SELECT count() FROM ledger_rerated") == 0

    result = reprice(client, pricer, DAY1, DAY2)
    expected = expected_diffs(events)
    got = {key: (d.events, d.changed, d.old_cost, d.new_cost) for key, d in result.diffs.items()}
    assert got == expected
    assert result.version == 2  # after the stream's version 1
    version_row = client.query(
        "SELECT kind, catalog_digest, period_start, period_end FROM price_versions FINAL "
        "WHERE version = 2"
    ).result_rows
    naive = [moment.replace(tzinfo=None) for moment in (DAY1, DAY2)]  # Nullable: naive UTC
    assert version_row == [("reprice", pricer.catalog_digest, *naive)]

    day1_minis = [e for e in events if e.event_time < DAY2 and e.model == "gpt-4o-mini"]
    rerated = client.query(
        "SELECT count(), sum(cost_total), groupUniqArray(price_version), groupUniqArray(model) "
        "FROM ledger_rerated"
    ).result_rows[0]
    old_minis = sum((cost(e, OLD["gpt-4o-mini"]) for e in day1_minis), Decimal(0))
    assert rerated == (len(day1_minis), old_minis, [1], ["gpt-4o-mini"])

    new_total = all_old - old_minis + sum((cost(e, NEW_MINI) for e in day1_minis), Decimal(0))
    assert result.new_total - result.old_total == new_total - all_old
    assert scalar(client, "SELECT sum(cost_total) FROM ledger FINAL") == new_total
    assert scalar(client, "SELECT count() FROM ledger FINAL") == len(events)
    assert scalar(client, "SELECT sum(cost_total) FROM rollup_day FINAL") == new_total
    assert scalar(client, "SELECT sum(cost_total) FROM rollup_minute FINAL") == new_total
    assert scalar(
        client, "SELECT countIf(price_version = 2) FROM ledger FINAL WHERE model = 'gpt-4o-mini'"
    ) == len(day1_minis)

    again = reprice(client, pricer, DAY1, DAY2)  # nothing left to change
    assert (again.version, again.changed, again.new_total) == (None, 0, result.new_total)


def test_reprice_cli_prints_the_diff_and_refuses_while_a_worker_holds_chdb(
    ledger_client: Client, tmp_path: Path, chdb_path: Path
) -> None:
    events = events_over_two_days(400)
    fill_ledger(ledger_client, events)
    config = write_config(tmp_path, chdb_path, INLINE_CUT)
    app = typer.Typer()
    app.command()(reprice_command)
    app.command("noop")(lambda: None)  # keeps `reprice` a named sub-command
    window = ["--since", DAY1.isoformat(), "--until", DAY2.isoformat(), "-c", str(config)]

    result = CliRunner().invoke(app, ["reprice", *window], env=WIDE)
    assert result.exit_code == 0, result.output
    expected = expected_diffs(events)
    for (_provider, model, team), (_n, _c, old, new) in expected.items():
        line = next(
            line for line in result.output.splitlines() if model in line and f" {team} " in line
        )
        # Amounts for people follow the one money rule (docs/cli.md; CSV and JSON keep them
        # exact).
        assert format_usd(old.quantize(ATTO)) in line, line
        assert format_usd((new - old).quantize(ATTO)) in line, line
    assert "written as price version 2" in result.output
    new_total = sum(
        (
            cost(e, NEW_MINI if e.model == "gpt-4o-mini" and e.event_time < DAY2 else OLD[e.model])
            for e in events
        ),
        Decimal(0),
    )
    assert scalar(ledger_client, "SELECT sum(cost_total) FROM ledger FINAL") == new_total

    announce_worker(load_settings(config))  # this live process now "owns" the directory
    refused = CliRunner().invoke(app, ["reprice", *window], env=WIDE)
    assert refused.exit_code == 1
    assert "stop the worker" in refused.output
    assert scalar(ledger_client, "SELECT max(version) FROM price_versions") == 2
