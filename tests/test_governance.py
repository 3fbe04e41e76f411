"""Tag governance: coverage per required tag and week and the untagged sources, against Python
figures over the generated ledger (real chDB); the dead-letter policy in the processor."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.config import InsightsSettings
from spendstream.events import UsageEvent
from spendstream.insights import Context, Window, run_insight
from spendstream.pricing import default_pricer
from spendstream.sinks.access import ClientReader
from spendstream.stream.processor import BatchProcessor, RawMessage
from tests.support.ledger_data import DAYS, START, fill_ledger, generate

SETTINGS = InsightsSettings(required_tags={"prod": ["team", "app", "user"], "*": ["team"]})
# A tag no rollup keeps: governance reads the ledger's tags map instead of the rollups.
CUSTOM_TAG = InsightsSettings(required_tags={"prod": ["team", "app", "user"], "*": ["project"]})


def percent(part: Decimal, whole: Decimal) -> Decimal | None:
    if not whole:
        return None
    return (part * 100 / whole).quantize(Decimal("0.01"), ROUND_HALF_EVEN)


def events() -> list[UsageEvent]:
    generated = generate(3_000)
    # a third of the traffic in another env, where only team is required
    return [
        e.model_copy(update={"tags": {**e.tags, "env": "dev"}}) if i % 3 == 0 else e
        for i, e in enumerate(generated)
    ]


def run(client: Client, name: str, settings: InsightsSettings = SETTINGS) -> list[dict[str, Any]]:
    window = Window(START, START + timedelta(days=DAYS))
    result = run_insight(name, Context(ClientReader(client), default_pricer(), settings, window))
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


@pytest.mark.integration
@pytest.mark.parametrize("settings", [SETTINGS, CUSTOM_TAG], ids=["rollups", "ledger-tags"])
def test_coverage_per_tag_and_week_and_untagged_sources(
    ledger_client: Client, settings: InsightsSettings
) -> None:
    rated = fill_ledger(ledger_client, events())
    cover: dict[tuple[str, date], list[Any]] = defaultdict(lambda: [0, 0, Decimal(0), Decimal(0)])
    sources: dict[tuple[str, ...], list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    total = Decimal(0)
    for event, rating in rated:
        total += rating.cost_total
        week = event.event_time.date() - timedelta(days=event.event_time.weekday())
        required = settings.required_for(event.tag("env"))
        for tag in required:
            entry = cover[(tag, week)]
            entry[0] += 1
            entry[2] += rating.cost_total
            if event.tag(tag):
                entry[1] += 1
                entry[3] += rating.cost_total
        missing = [tag for tag in required if not event.tag(tag)]
        if missing:
            key = (event.tag("team") or "unallocated", event.tag("app"), event.tag("user"))
            sources[(*key, ",".join(missing))][0] += 1
            sources[(*key, ",".join(missing))][1] += rating.cost_total
    rows = run(ledger_client, "governance", settings)
    assert [(r["tag"], r["week"]) for r in rows] == sorted(cover)
    previous: dict[str, Decimal | None] = {}
    for row in rows:
        events_, tagged, cost, tagged_cost = cover[(row["tag"], row["week"])]
        assert (row["events"], row["tagged_events"]) == (events_, tagged)
        assert (row["cost_usd"], row["tagged_cost_usd"]) == (cost, tagged_cost)
        assert row["coverage_pct"] == percent(tagged_cost, cost)
        before = previous.get(row["tag"])
        assert row["change_pct"] == (None if before is None else row["coverage_pct"] - before)
        previous[row["tag"]] = row["coverage_pct"]
    got = {
        (r["team"], r["app"], r["user"], r["missing_tags"]): [r["events"], r["cost_usd"]]
        for r in run(ledger_client, "untagged", settings)
    }
    assert len(sources) <= 50 and got == dict(sources)
    assert any(key[0] == "unallocated" for key in got)
    top = run(ledger_client, "untagged", settings)[0]
    assert top["share_of_spend_pct"] == percent(top["cost_usd"], total)
    assert top["cost_usd"] == max(cost for _, cost in sources.values())


def test_dead_letter_policy_refuses_events_lacking_required_tags() -> None:
    def message(tags: dict[str, str], offset: int) -> RawMessage:
        event = UsageEvent(provider="openai", model="gpt-4o", input_tokens=5, tags=tags)
        return RawMessage(event.to_json_bytes(), "usage", 0, offset)

    batch = [message({"env": "prod", "team": "a"}, 0), message({"env": "dev", "team": "b"}, 1)]
    strict = BatchProcessor(default_pricer(), missing_tags=SETTINGS.missing_tags).process(batch)
    assert [entry.event.tag("team") for entry in strict.entries] == ["b"]
    [letter] = strict.dead_letters
    assert "app, user missing" in letter.reason and letter.source_offset == 0
    lenient = BatchProcessor(default_pricer()).process(batch)
    assert len(lenient.entries) == 2 and not lenient.dead_letters
