"""What-if on real chDB against per-event Decimal figures: each event rated again by the pricer
under the changes, summed per team and per day here (no SQL, no token sums)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.advice.whatif import WhatIfError, WhatIfRequest, simulate
from spendstream.events import UsageEvent
from spendstream.pricing import Pricer, Rating, default_pricer
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from tests.support.insight_data import END, START, generate
from tests.support.ledger_data import fill_ledger
from tests.support.ledger_template import copy_template

pytestmark = pytest.mark.integration
Rated = list[tuple[UsageEvent, Rating]]
SHARE = Decimal("0.5")
CHANGES: list[dict[str, Any]] = [
    {
        "action": "model",
        "scope": {"feature": "classify", "model": "gpt-4o"},
        "to_model": "gpt-4o-mini",
    },
    {"action": "batch", "scope": {"feature": "nightly"}},
    {"action": "cache_read", "scope": {"feature": "draft"}, "share": str(SHARE)},
    {"action": "price", "scope": {"team": "growth"}, "percent": "-10"},
    {"action": "drop", "scope": {"feature": "search_embed"}},
]


@pytest.fixture(scope="module")
def ledger(
    tmp_path_factory: pytest.TempPathFactory, migrated_template: Path
) -> Iterator[tuple[Client, Rated]]:
    path = copy_template(migrated_template, tmp_path_factory.mktemp("whatif") / "clickhouse")
    client = connect(f"chdb://{path}", "spendstream")
    yield client, fill_ledger(client, generate())
    client.close()


def after(event: UsageEvent, rating: Rating, pricer: Pricer | None = None) -> Decimal:
    """The event's cost under CHANGES, rated again event by event (by ``pricer``, default: the
    shipped catalog)."""
    pricer = pricer or default_pricer()
    feature, team = event.tag("feature"), event.tag("team")
    cost = rating.cost_total
    if event.response_cached:
        pass  # served by the app's cache: nothing to re-price
    elif feature == "classify" and event.model == "gpt-4o":
        cost = pricer.rate(event.model_copy(update={"model": "gpt-4o-mini"})).cost_total
    elif feature == "nightly":
        cost = pricer.rate(event.model_copy(update={"batch": True})).cost_total
    elif feature == "draft":
        # linear in the tokens at fixed rates: half the uncached input read from the cache is
        # the mean of the event as is and the event with all of it read from the cache
        uncached = event.input_tokens - event.cache_read_tokens - event.cache_write_tokens
        cached = event.model_copy(update={"cache_read_tokens": event.cache_read_tokens + uncached})
        cost = (1 - SHARE) * pricer.rate(event).cost_total + SHARE * pricer.rate(cached).cost_total
    if team == "growth":
        cost *= Decimal("0.9")
    if feature == "search_embed":
        cost = Decimal(0)
    return cost


def test_whatif_equals_rating_every_event_again(ledger: tuple[Client, Rated]) -> None:
    client, rated = ledger
    request = WhatIfRequest.model_validate(
        {"since": START, "until": END, "by": "team", "changes": CHANGES}
    )
    result = simulate(ClientReader(client), default_pricer(), request)
    by_team: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    by_day: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for event, rating in rated:
        cost = after(event, rating)
        for bucket in (by_team[event.tag("team")], by_day[event.event_time.date().isoformat()]):
            bucket[0] += rating.cost_total
            bucket[1] += cost
    assert result["by_scope"]["rows"] == [[k, b, a, a - b] for k, (b, a) in sorted(by_team.items())]
    assert result["by_day"]["rows"] == [[k, b, a, a - b] for k, (b, a) in sorted(by_day.items())]
    before = sum((r.cost_total for _, r in rated), Decimal(0))
    total_after = sum((a for _, a in by_team.values()), Decimal(0))
    assert (result["before_usd"], result["after_usd"]) == (before, total_after)
    assert total_after < before
    dropped = result["changes"][4]
    assert dropped["after_usd"] == 0 and dropped["events"] == 500
    moved = result["changes"][0]
    assert moved["events"] == sum(
        1 for e, _ in rated if e.tag("feature") == "classify" and e.model == "gpt-4o"
    )


def test_whatif_writes_nothing_and_scopes_to_teams(ledger: tuple[Client, Rated]) -> None:
    client, rated = ledger
    count = client.query("SELECT count() FROM ledger").result_rows[0][0]
    request = WhatIfRequest.model_validate(
        {"since": START, "until": END, "by": "feature", "changes": CHANGES}
    )
    result = simulate(
        ClientReader(client),
        default_pricer(),
        request,
        "team IN {t:Array(String)}",
        {"t": ["growth"]},
    )
    assert {row[0] for row in result["by_scope"]["rows"]} == {"nightly", "report"}
    growth = sum((r.cost_total for e, r in rated if e.tag("team") == "growth"), Decimal(0))
    assert result["before_usd"] == growth
    assert client.query("SELECT count() FROM ledger").result_rows[0][0] == count


def test_whatif_errors_say_what_to_change(ledger: tuple[Client, Rated]) -> None:
    client, _ = ledger
    reader, pricer = ClientReader(client), default_pricer()
    unknown = WhatIfRequest.model_validate(
        {
            "since": START,
            "until": END,
            "changes": [
                {"action": "model", "scope": {"feature": "classify"}, "to_model": "gpt-99"}
            ],
        }
    )
    with pytest.raises(WhatIfError, match="gpt-99 is not in the price catalog"):
        simulate(reader, pricer, unknown)
    backwards = WhatIfRequest.model_validate(
        {"since": END, "until": START, "changes": [{"action": "drop"}]}
    )
    with pytest.raises(WhatIfError, match="until must be after since"):
        simulate(reader, pricer, backwards)
    with pytest.raises(ValueError, match="needs 'to_model'"):
        WhatIfRequest.model_validate(
            {"since": START, "until": END, "changes": [{"action": "model"}]}
        )
    with pytest.raises(ValueError, match="scope keys"):
        WhatIfRequest.model_validate(
            {"since": START, "until": END, "changes": [{"action": "drop", "scope": {"user": "x"}}]}
        )
