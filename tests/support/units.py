"""Unit-bearing test traffic and its cost by hand: USD per one unit typed from the providers'
price pages (docs/cost-drivers.md), independent of the shipped catalog."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from spendstream.events import UsageEvent
from spendstream.sinks.entry import LEDGER_COLUMNS, LedgerEntry
from spendstream.sinks.migrations import ROLLUP_TABLES, UNIT_LEDGER_COLUMNS

D = Decimal
# A self-hosted vector database priced by a [pricing] override: $0.40 per 1,000 queries.
VECTOR_OVERRIDE = {
    "name": "qdrant",
    "provider": "self-hosted",
    "model": "qdrant",
    "unit_prices": {"vector_queries": {"price": D("0.40"), "per": 1000}},
}
VECTOR_OVERRIDE_TOML = """
[[pricing.overrides]]
name = "qdrant"
provider = "self-hosted"
model = "qdrant"
unit_prices = { vector_queries = { price = 0.40, per = 1000 } }
"""
HAND = {
    ("openai", "dall-e-3", "images.1024x1024.hd"): D("0.080"),
    ("openai", "dall-e-3", "images.1024x1024.standard"): D("0.040"),
    ("openai", "whisper-1", "audio_seconds"): D("0.006") / 60,
    ("self-hosted", "qdrant", "vector_queries"): D("0.40") / 1000,
    ("anthropic", "claude-sonnet-4-5", "web_search_calls"): D(10) / 1000,
}
SONNET = (D(3), D(15))  # claude-sonnet-4-5, USD per million input / output tokens
TEAMS = ("search", "support", "rag")
START_OF_WRITE = datetime(2026, 11, 1, tzinfo=UTC)  # ingested_at of rows written as before


def unit_events(count: int, start: datetime, span_s: int, seed: int = 5) -> list[UsageEvent]:
    """``count`` events cycling through :data:`HAND`'s units (fractional audio seconds, web
    searches with tokens), plus one event with a custom unit nobody prices (last)."""
    rng = random.Random(seed)
    shapes = list(HAND)
    events = []
    for i in range(count):
        provider, model, unit = shapes[i % len(shapes)]
        quantity: Any = rng.randrange(1, 60)
        if unit == "audio_seconds":
            quantity = f"{rng.randrange(1, 600)}.{rng.randrange(0, 10)}"
        fields: dict[str, Any] = {}
        if provider == "anthropic":
            fields = {"input_tokens": rng.randrange(100, 9_000), "output_tokens": 300}
        events.append(
            UsageEvent(
                event_id=f"u{seed}-{i}",
                event_time=start + timedelta(seconds=rng.randrange(0, span_s)),
                provider=provider,
                model=model,
                units={unit: quantity},
                tags={"team": TEAMS[i % len(TEAMS)], "app": "rag"},
                **fields,
            )
        )
    events.append(
        UsageEvent(
            event_id=f"u{seed}-custom",
            event_time=start,
            provider="self-hosted",
            model="qdrant",
            units={"custom_widgets": 3},
        )
    )
    return events


def hand_cost(event: UsageEvent) -> dict[str, Decimal]:
    """Cost per driver ('tokens' or the unit); {} when a unit has no price (unpriced event)."""
    costs: dict[str, Decimal] = {}
    for unit, quantity in event.units.items():
        if (event.provider, event.model, unit) not in HAND:
            return {}
        costs[unit] = quantity * HAND[(event.provider, event.model, unit)]
    if event.input_tokens:
        costs["tokens"] = (event.input_tokens * SONNET[0] + event.output_tokens * SONNET[1]) / 10**6
    return costs


def total(events: list[UsageEvent]) -> Decimal:
    return sum((sum(hand_cost(e).values(), D(0)) for e in events), D(0))


def by_driver(events: list[UsageEvent]) -> dict[str, Decimal]:
    """Hand cost per driver over ``events``."""
    sums: dict[str, Decimal] = {}
    for event in events:
        for driver, cost in hand_cost(event).items():
            sums[driver] = sums.get(driver, D(0)) + cost
    return sums


# The rollup statement of the schema before migration 40 (positional, no unit columns).
PREVIOUS_ROLLUP = (
    "INSERT INTO {table} SELECT toStartOfInterval(event_time, INTERVAL 1 {unit}) AS ws, team, app, "
    "env, feature, user, provider, model, count(), sum(request_count), countIf(NOT priced), "
    "sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens), "
    "sum(reasoning_tokens), sum(cost_input), sum(cost_output), sum(cost_cache_read), "
    "sum(cost_cache_write), sum(cost_reasoning), sum(cost_total), now64(6) FROM ledger FINAL "
    "GROUP BY ws, team, app, env, feature, user, provider, model"
)


def write_as_before_units(client: Client, entries: Sequence[LedgerEntry], version: int) -> None:
    """Write ``entries`` as the writer before usage units did: the ledger columns the table has
    (never the unit ones), then the full minute, hour and day rollups recomputed from the ledger."""
    unit_columns = {name for name, _kind in UNIT_LEDGER_COLUMNS}
    existing = {str(row[0]) for row in client.query("DESCRIBE TABLE ledger").result_rows}
    names = [name for name in LEDGER_COLUMNS if name in existing and name not in unit_columns]
    rows = []
    for entry in entries:
        values = dict(zip(LEDGER_COLUMNS, entry.row(version, START_OF_WRITE), strict=True))
        rows.append([values[name] for name in names])
    client.insert("ledger", rows, column_names=names)
    for unit, table in ROLLUP_TABLES.items():
        client.command(PREVIOUS_ROLLUP.format(table=table, unit=unit))
