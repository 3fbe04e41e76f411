"""``sinks.entry.ledger_columns`` (issue 29: built by C-level passes, with shortcuts for the
usual slice) builds the same columns as the per-event reference it replaced, on every kind of
slice: scaled and Decimal ratings, mixed, with and without units and optional fields."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime
from operator import attrgetter, itemgetter
from typing import Any

import pytest

from spendstream.pricing import default_pricer
from spendstream.pricing.scaled import ScaledPricer, ScaledRating, scaled_money
from spendstream.sinks.entry import LEDGER_COLUMNS, MONEY_COLUMNS, KafkaOrigin, LedgerEntry
from spendstream.sinks.entry import ledger_columns as built_columns
from spendstream.sinks.migrations import COST_COLUMNS, TAG_DIMENSIONS, TOKEN_COLUMNS
from spendstream.stream.fastpath import FastDecoder
from tests.test_fastpath import sdk_event

INGESTED = datetime(2026, 12, 1, tzinfo=UTC)


def reference_columns(
    entries: Sequence[LedgerEntry], price_version: int, ingested_at: datetime, scaled: bool
) -> list[list[Any]]:
    """The columns as the code before this change built them (one Python loop per column)."""
    events = [entry.event for entry in entries]
    ratings = [entry.rating for entry in entries]
    origins = [entry.origin for entry in entries]
    count = len(entries)
    amounts = [scaled_money(rating) for rating in ratings]

    def plain(items: Sequence[Any], *names: str) -> list[list[Any]]:
        return [[attrgetter(name)(item) for item in items] for name in names]

    def money(*names: str) -> list[list[Any]]:
        if scaled:
            return [[itemgetter(MONEY_COLUMNS.index(n))(a) for a in amounts] for n in names]
        return plain(ratings, *names)

    def text(name: str) -> list[str]:
        return [getattr(event, name) or "" for event in events]

    return [
        *plain(events, "event_id", "event_time"),
        [ingested_at] * count,
        *plain(events, "provider", "model"),
        text("response_model"),
        *plain(events, "operation"),
        *([event.tags.get(key, "") for event in events] for key in TAG_DIMENSIONS),
        *plain(events, "tags", *TOKEN_COLUMNS, "request_count", "batch", "latency_ms", "status"),
        text("error_type"),
        *plain(events, "provider_cost_usd"),
        *plain(ratings, "priced", "unpriced_reason", "price_ref"),
        [price_version] * count,
        *money(*COST_COLUMNS, "cost_total"),
        *plain(origins, "topic", "partition", "offset"),
        [dict(sorted(event.units.items())) for event in events],
        [{unit.unit: unit.cost for unit in rating.units} for rating in ratings],
        [{unit.unit: unit.price_ref for unit in rating.units} for rating in ratings],
        *money("cost_units"),
        *plain(events, "cache_write_1h_tokens"),  # migration 1012
        *plain(ratings, "cost_cache_write_1h"),
        text("prompt_hash"),
        *plain(events, "response_cached"),
        text("finish_reason"),
        *plain(events, "max_tokens"),
        *money("cost_avoided"),
        *plain(ratings, "placement.platform", "placement.region"),
        *(text(name) for name in ("trace_id", "session_id", "run_id", "agent")),
        [event.step or 0 for event in events],
        *(text(name) for name in ("parent", "tool", "customer")),
    ]


def entries(count: int, seed: int) -> tuple[list[LedgerEntry], list[LedgerEntry]]:
    """The same SDK events as the fast path's entries (msgspec events, scaled ratings where
    it can) and as the reference path's (pydantic events, Decimal ratings)."""
    rng = random.Random(seed)
    pricer = default_pricer()
    scaled, decoder = ScaledPricer(pricer), FastDecoder()
    fast: list[LedgerEntry] = []
    slow: list[LedgerEntry] = []
    for index in range(count):
        event = sdk_event(rng, index)
        origin = KafkaOrigin("usage", index % 3, index, index % 5 or None)
        slow.append(LedgerEntry(event, pricer.rate(event), origin))
        packed = decoder.decode(event.to_json_bytes())
        found = packed if packed is not None else event
        fast.append(LedgerEntry(found, scaled.rate(found), origin))
    return fast, slow


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("scaled", [True, False])
def test_columns_equal_the_per_event_reference(seed: int, scaled: bool) -> None:
    fast, slow = entries(400, seed)
    slices = [fast, slow, fast[::2] + slow[1::2], usual(fast), usual(fast)[:1], fast[:1], []]
    for part in slices:
        found = built_columns(part, 7, INGESTED, scaled)
        expected = reference_columns(part, 7, INGESTED, scaled)
        assert len(found) == len(LEDGER_COLUMNS)
        for name, mine, theirs in zip(LEDGER_COLUMNS, found, expected, strict=True):
            assert [(type(v), v) for v in mine] == [(type(v), v) for v in theirs], name


@pytest.mark.parametrize("block", [1, 7, 400])
def test_columns_built_in_blocks_equal_the_reference(block: int) -> None:
    """A slice built ``block`` entries at a time (the cache blocking) and joined gives the
    reference's columns, none of them the same list object (joining extends each in place)."""
    fast, slow = entries(150, 4)
    for part in (fast, slow, fast[::2] + slow[1::2], usual(fast)):
        for scaled in (True, False):
            found = built_columns(part, 7, INGESTED, scaled, block=block)
            assert len({id(column) for column in found}) == len(LEDGER_COLUMNS)
            expected = reference_columns(part, 7, INGESTED, scaled)
            for name, mine, theirs in zip(LEDGER_COLUMNS, found, expected, strict=True):
                assert [(type(v), v) for v in mine] == [(type(v), v) for v in theirs], name


OPTIONAL_TEXT = ("response_model", "error_type", "finish_reason", "agent", "tool", "customer")


def usual(slice_: list[LedgerEntry]) -> list[LedgerEntry]:
    """The slice the shortcuts are for: scaled ratings, no units, no optional text."""
    return [
        entry
        for entry in slice_
        if isinstance(entry.rating, ScaledRating)
        and not entry.event.units
        and all(getattr(entry.event, name) is None for name in OPTIONAL_TEXT)
    ]


def test_the_usual_slice_is_in_the_test_above() -> None:
    """(else the equality test would not cover the shortcuts)"""
    for seed in (1, 2, 3):
        found = usual(entries(400, seed)[0])
        assert len(found) > 10
        columns = dict(zip(LEDGER_COLUMNS, built_columns(found, 1, INGESTED, True), strict=True))
        assert columns["agent"] == [""] * len(found)
        assert columns["cost_units"] == [0] * len(found)
        assert columns["unit_quantities"] == [{}] * len(found)
