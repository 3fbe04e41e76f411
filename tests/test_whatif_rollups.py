"""What-if read from the lean drivers rollups (migration 70) equals what-if read from
``ledger FINAL`` to the last digit: whole weeks, periods cut mid-hour and mid-day, a team
scope, long-context calls on both sides of the catalog's tier thresholds and calls the app
answered from its own cache."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.advice.whatif import WhatIfRequest, groups_sql, simulate
from spendstream.events import UsageEvent
from spendstream.pricing import default_pricer
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from spendstream.sinks.migrations import LEAN_DRIVER_TABLES, LONG_INPUT_FLOOR
from tests.support.insight_data import END, START, generate
from tests.support.ledger_data import fill_ledger
from tests.support.ledger_template import copy_template
from tests.test_whatif import CHANGES

pytestmark = pytest.mark.integration

# Long calls: under the floor, between it and the 200 k tier, above the tier.
LONG_INPUTS = (LONG_INPUT_FLOOR - 1, LONG_INPUT_FLOOR + 1, 150_000, 200_000, 200_001, 260_000)
TO_TIERED = {
    "action": "model",
    "scope": {"feature": "classify"},
    "to_provider": "anthropic",
    "to_model": "claude-sonnet-4-5",
}
PERIODS = (
    (START, END),
    (START + timedelta(days=1, hours=5, minutes=17), END - timedelta(days=2, minutes=41)),
    (START + timedelta(days=3, hours=2, minutes=5), START + timedelta(days=3, hours=2, minutes=55)),
)


def long_calls() -> list[UsageEvent]:
    return [
        UsageEvent(
            event_time=START + timedelta(days=index % 10, hours=index, minutes=13 * index),
            provider="anthropic",
            model="claude-sonnet-4-5",
            input_tokens=tokens,
            output_tokens=500 + index,
            response_cached=index == 2,
            tags={"team": "search", "app": "web", "feature": "classify"},
        )
        for index, tokens in enumerate(LONG_INPUTS * 3)
    ]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, migrated_template: Path) -> Iterator[Client]:
    path = copy_template(
        migrated_template, tmp_path_factory.mktemp("whatif-rollups") / "clickhouse"
    )
    client = connect(f"chdb://{path}", "spendstream")
    fill_ledger(client, [*generate(), *long_calls()])
    yield client
    client.close()


CLASSIFY_TO_BATCH = {"action": "batch", "scope": {"feature": "classify"}}


@pytest.mark.parametrize("changes", [CHANGES, [TO_TIERED, CLASSIFY_TO_BATCH]])
def test_rollup_reads_equal_the_ledger(client: Client, changes: list[dict[str, Any]]) -> None:
    reader, pricer = ClientReader(client), default_pricer()
    for since, until in PERIODS:
        request = WhatIfRequest.model_validate(
            {"since": since, "until": until, "by": "feature", "changes": changes}
        )
        for team_sql, params in (("1", {}), ("team IN {t:Array(String)}", {"t": ["search"]})):
            rollups = simulate(reader, pricer, request, team_sql, params)
            ledger = simulate(reader, pricer, request, team_sql, params, from_ledger=True)
            assert rollups == ledger
            assert rollups["before_usd"] > 0


def test_the_rollups_are_read_unless_a_threshold_is_under_the_floor() -> None:
    assert LEAN_DRIVER_TABLES["day"] in groups_sql([128_000, 200_000], "1")
    assert "ledger FINAL" in groups_sql([128_000, 200_000], "1", from_ledger=True)
    low = groups_sql([LONG_INPUT_FLOOR - 1, 200_000], "1")
    assert LEAN_DRIVER_TABLES["day"] not in low and "ledger FINAL" in low
