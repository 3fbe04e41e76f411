"""What-if and the recommendations' savings under negotiated overrides (real chDB): one price
basis, the one the ledger's pricing uses, on both sides of every figure.

The ledger is written by a pricer with overrides (a team's discount on gpt-4o, a team's absolute
price for gpt-4o-mini, a discount with its own batch discount on gpt-4.1, an app's discount on
claude-sonnet-4-5 from the second week); the expected figures rate every event again with that
pricer under the changes, as tests/test_whatif.py does with list prices."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.advice.recommend import build
from spendstream.advice.whatif import WhatIfRequest, simulate
from spendstream.config import InsightsSettings
from spendstream.events import UsageEvent
from spendstream.insights import Context, Window
from spendstream.pricing import Pricer, Rating
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from tests.support.insight_data import END, START, generate
from tests.support.ledger_data import fill_ledger
from tests.support.ledger_template import copy_template
from tests.test_whatif import CHANGES
from tests.test_whatif import after as listed_after

pytestmark = pytest.mark.integration
Rated = list[tuple[UsageEvent, Rating]]
OVERRIDES: list[dict[str, Any]] = [
    {
        "name": "search-4o",
        "provider": "openai",
        "model": "gpt-4o",
        "discount": "0.3",
        "tags": {"team": "search"},
    },
    {
        "name": "search-mini",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input": "0.12",
        "output": "0.48",
        "tags": {"team": "search"},
    },
    {
        "name": "growth-41",
        "provider": "openai",
        "model": "gpt-4.1",
        "discount": "0.3",
        "batch_discount": "0.25",
    },
    {
        "name": "bot-sonnet",
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "discount": "0.2",
        "effective_from": date(2026, 10, 12),
        "tags": {"app": "bot"},
    },
]
PRICER = Pricer.from_config({"overrides": OVERRIDES})
SETTINGS = InsightsSettings(batch_features=["nightly"])


@pytest.fixture(scope="module")
def ledger(
    tmp_path_factory: pytest.TempPathFactory, migrated_template: Any
) -> Iterator[tuple[Client, Rated]]:
    path = copy_template(migrated_template, tmp_path_factory.mktemp("deals") / "clickhouse")
    client = connect(f"chdb://{path}", "spendstream")
    yield client, fill_ledger(client, generate(), PRICER)
    client.close()


def whatif(client: Client, changes: list[dict[str, Any]], by: str = "team") -> dict[str, Any]:
    request = {"since": START, "until": END, "by": by, "changes": changes}
    return simulate(ClientReader(client), PRICER, WhatIfRequest.model_validate(request))


def after(event: UsageEvent, rating: Rating) -> Decimal:
    """The event's cost under CHANGES, rated again event by event with the override pricer."""
    return listed_after(event, rating, PRICER)


def test_the_overrides_price_the_planted_traffic(ledger: tuple[Client, Rated]) -> None:
    """Each override prices some of the traffic the changes touch (else nothing is tested)."""
    _, rated = ledger
    refs = {r.price_ref.split("+override:")[-1] for _, r in rated if "+override:" in r.price_ref}
    assert refs == {"search-4o", "growth-41", "bot-sonnet"}


def test_whatif_under_overrides_equals_rating_every_event_again(
    ledger: tuple[Client, Rated],
) -> None:
    client, rated = ledger
    result = whatif(client, CHANGES)
    before = sum((r.cost_total for _, r in rated), Decimal(0))
    expected = sum((after(e, r) for e, r in rated), Decimal(0))
    assert (result["before_usd"], result["after_usd"]) == (before, expected)
    nightly = [(e, r) for e, r in rated if e.tag("feature") == "nightly" and not e.batch]
    unbatched = sum((r.cost_total for _, r in nightly), Decimal(0))
    # batch under growth-41: its own 25 % off the negotiated price (list: 50 % off list)
    (batched,) = whatif(client, [CHANGES[1]])["changes"]
    assert batched["change_usd"] == -unbatched * Decimal("0.25") < 0
    search = {row[0]: row for row in result["by_scope"]["rows"]}["search"]
    assert search[3] == sum(
        (after(e, r) - r.cost_total for e, r in rated if e.tag("team") == "search"), Decimal(0)
    )


def test_a_change_that_changes_nothing_keeps_every_figure(ledger: tuple[Client, Rated]) -> None:
    client, _ = ledger
    nothing = [
        {"action": "model", "scope": {"model": "gpt-4o"}, "to_model": "gpt-4o"},
        {"action": "model", "scope": {"model": "gpt-4.1"}, "to_model": "gpt-4.1"},
        {"action": "cache_read", "scope": {"feature": "draft"}, "share": "0"},
        {"action": "price", "scope": {"team": "growth"}, "percent": "0"},
    ]
    for by in ("team", "model"):
        result = whatif(client, nothing, by)
        assert result["after_usd"] == result["before_usd"] > 0
        assert all(row[3] == 0 for row in result["by_scope"]["rows"] + result["by_day"]["rows"])
        assert [change["change_usd"] for change in result["changes"]] == [0, 0, 0, 0]
        assert all(change["events"] > 0 for change in result["changes"])


def test_each_saving_recommended_is_the_whatif_of_its_change(
    ledger: tuple[Client, Rated],
) -> None:
    client, _ = ledger
    days = (END - START).days
    context = Context(ClientReader(client), PRICER, SETTINGS, Window(START, END))
    recs = [r for r in build(context, days) if r.kind in ("rightsize", "batch")]
    assert {r.kind for r in recs} == {"rightsize", "batch"}
    assert {r.scope["feature"] for r in recs if r.kind == "rightsize"} >= {"classify", "draft"}
    for rec in recs:
        change: dict[str, Any] = {"action": "batch", "scope": rec.scope}
        if rec.kind == "rightsize":
            change = {"action": "model", "scope": rec.scope, "to_model": rec.evidence["candidate"]}
        (found,) = whatif(client, [change])["changes"]
        assert found["change_usd"] == -rec.saving_usd, (rec.kind, rec.scope)
