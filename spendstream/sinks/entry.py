"""What the stream hands its sinks: a validated event (priced, for the ledger) and where it was
read from.

Free of ClickHouse and Faust, so the stream's processor and the ledger writer both import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Any, TypeVar

import msgspec

from spendstream.events import OutcomeEvent, UsageRecord
from spendstream.pricing.costs import ZERO
from spendstream.pricing.scaled import AnyRating, ScaledRating
from spendstream.pricing.scaled import scaled_money as to_scaled_money
from spendstream.sinks.migrations import (
    AGENT_COLUMNS,
    CACHE_HOUR_COLUMNS,
    COST_COLUMNS,
    TAG_DIMENSIONS,
    TOKEN_COLUMNS,
    UNIT_LEDGER_COLUMNS,
)

LEDGER_COLUMNS = (
    "event_id",
    "event_time",
    "ingested_at",
    "provider",
    "model",
    "response_model",
    "operation",
    "team",
    "app",
    "env",
    "feature",
    "user",
    "tags",
    *TOKEN_COLUMNS,
    "request_count",
    "batch",
    "latency_ms",
    "status",
    "error_type",
    "provider_cost_usd",
    "priced",
    "unpriced_reason",
    "price_ref",
    "price_version",
    *COST_COLUMNS,
    "cost_total",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    *(name for name, _kind in UNIT_LEDGER_COLUMNS),
    # Migration 1012: 1-hour cache writes. Here, not last: the INSERT names its columns, and
    # tests of older migrations cut the rows of the columns added after them off the end.
    *(name for name, _kind in CACHE_HOUR_COLUMNS),
    "prompt_hash",
    "response_cached",
    "finish_reason",
    "max_tokens",
    "cost_avoided",
    "platform",  # migration 80: the placement the call was priced for
    "region",
    *(name for name, _kind in AGENT_COLUMNS),  # migration 1100: runs, sessions, customers
)


class KafkaOrigin(msgspec.Struct, frozen=True, gc=False):
    """Where an event was read from (kept in the ledger for audits). ``index`` is the line of a
    multi-event message (None for a single-event message); it is not stored in the ledger but
    names the line in a dead letter if the ledger rejects the event.

    A msgspec struct, as :class:`LedgerEntry`: built per event on the hot path, where a frozen
    dataclass's ``__init__`` costs ~10× more and every instance is tracked by the cyclic
    collector (``gc=False``: it references no container, so it can be in no cycle)."""

    topic: str = ""
    partition: int = 0
    offset: int = 0
    index: int | None = None


class LedgerEntry(msgspec.Struct, frozen=True, gc=False):
    """A validated event with its rating, ready for the ledger (a msgspec struct: see
    :class:`KafkaOrigin`; its event, rating and origin never refer back to it)."""

    event: UsageRecord
    rating: AnyRating  # pricing.scaled: a Rating, or its scaled-integer form
    origin: KafkaOrigin = KafkaOrigin()

    def row(self, price_version: int, ingested_at: datetime) -> list[Any]:
        """This entry's ledger row (``LEDGER_COLUMNS`` order)."""
        return [column[0] for column in ledger_columns([self], price_version, ingested_at)]


# The ledger's money columns a rating fills, in pricing.scaled.scaled_money's order.
MONEY_COLUMNS = (*COST_COLUMNS, "cost_units", "cost_total", "cost_avoided")


# Entries per block of ledger_columns: ~60 passes over a block of ~0.5 MB of records stay in
# the core's L2 cache; over a whole slice (~40 k records, ~20 MB) each pass misses again.
BLOCK_ENTRIES = 1024


def ledger_columns(
    entries: Sequence[LedgerEntry],
    price_version: int,
    ingested_at: datetime,
    scaled_money: bool = False,
    block: int = BLOCK_ENTRIES,
) -> list[list[Any]]:
    """The ledger columns of ``entries`` (``LEDGER_COLUMNS`` order), built once per slice for a
    column-oriented INSERT: one pass per column instead of a row per event that the driver then
    pivots back into columns. With ``scaled_money`` the ``MONEY_COLUMNS`` hold whole 1e-18 USD
    (``int``, as ``pricing.scaled`` prices) for ``sinks.columns.ScaledInteger``; else Decimals.

    Each column is one C-level pass where it can be (``map`` over getters), not a Python loop
    per event: the worker builds ~60 columns per slice (docs/benchmarks-ingest.md). A slice is
    built ``block`` entries at a time and the blocks' columns joined (cache blocking: the same
    lists, 0.75x the time on a 40 k-entry slice)."""
    columns = block_columns(entries[:block], price_version, ingested_at, scaled_money)
    for start in range(block, len(entries), block):
        more = block_columns(
            entries[start : start + block], price_version, ingested_at, scaled_money
        )
        for column, tail in zip(columns, more, strict=True):
            column += tail  # every column is a fresh list of its block's (none is shared)
    return columns


def block_columns(
    entries: Sequence[LedgerEntry], price_version: int, ingested_at: datetime, scaled_money: bool
) -> list[list[Any]]:
    """:func:`ledger_columns` of one block."""
    events = list(map(attrgetter("event"), entries))
    ratings = list(map(attrgetter("rating"), entries))
    origins = list(map(attrgetter("origin"), entries))
    count = len(entries)
    if scaled_money:
        money_columns = _scaled_money_columns(ratings)

        def money(*names: str) -> list[list[Any]]:
            return [money_columns[MONEY_COLUMNS.index(name)] for name in names]
    else:

        def money(*names: str) -> list[list[Any]]:
            return plain(ratings, *names)

    def plain(items: Sequence[Any], *names: str) -> list[list[Any]]:
        return [list(map(attrgetter(name), items)) for name in names]

    def text(name: str) -> list[str]:  # optional text: '' when absent
        return _none_as(list(map(attrgetter(name), events)), "")

    tags = list(map(attrgetter("tags"), events))
    hours = list(map(attrgetter("cache_write_1h_tokens"), events))
    units = list(map(attrgetter("units"), events))
    rated_units = list(map(attrgetter("units"), ratings))
    none: dict[str, Any] = {}  # shared by the rows without units: only ever read
    return [
        *plain(events, "event_id", "event_time"),
        [ingested_at] * count,
        *plain(events, "provider", "model"),
        text("response_model"),
        *plain(events, "operation"),
        # the tag dimensions: dict.get called from C, no Python frame per event
        *(
            list(map(dict.get, tags, repeat(key, count), repeat("", count)))
            for key in TAG_DIMENSIONS
        ),
        tags,
        *plain(events, *TOKEN_COLUMNS, "request_count", "batch", "latency_ms", "status"),
        text("error_type"),
        *plain(events, "provider_cost_usd"),
        *plain(ratings, "priced", "unpriced_reason", "price_ref"),
        [price_version] * count,
        *money(*COST_COLUMNS, "cost_total"),
        *plain(origins, "topic", "partition", "offset"),
        # UNIT_LEDGER_COLUMNS: quantities of every unit; costs and refs of priced units
        # (most slices have no units at all: one C-level `any` instead of a loop per event)
        [dict(sorted(found.items())) if found else none for found in units]
        if any(units)
        else [none] * count,
        *(
            (
                [
                    {unit.unit: unit.cost for unit in rated} if rated else none
                    for rated in rated_units
                ],
                [
                    {unit.unit: unit.price_ref for unit in rated} if rated else none
                    for rated in rated_units
                ],
            )
            if any(rated_units)
            else ([none] * count, [none] * count)
        ),
        *money("cost_units"),
        # CACHE_HOUR_COLUMNS (migration 1012): Decimal costs, read only where a write was 1-hour
        hours,
        list(map(attrgetter("cost_cache_write_1h"), ratings)) if any(hours) else [ZERO] * count,
        text("prompt_hash"),
        *plain(events, "response_cached"),
        text("finish_reason"),
        *plain(events, "max_tokens"),
        *money("cost_avoided"),
        # a rating's platform and region are properties of its placement: read them in C
        *plain(ratings, "placement.platform", "placement.region"),
        # AGENT_COLUMNS (migration 1100): '' (step 0) where absent
        *(text(name) for name in ("trace_id", "session_id", "run_id", "agent")),
        _none_as(list(map(attrgetter("step"), events)), 0),
        *(text(name) for name in ("parent", "tool", "customer")),
    ]


T = TypeVar("T")


def _none_as(values: list[T | None], default: T) -> list[T]:
    """``values`` with None as ``default`` ('' for optional text, 0 for the agent step).
    Optional fields are mostly absent (or mostly present) in a slice: C-level counts decide,
    and only a mixed column pays a Python loop."""
    absent = values.count(None)
    if not absent:
        return values  # type: ignore[return-value]  # no None in it
    if absent == len(values):
        return [default] * absent
    return [default if value is None else value for value in values]


def _scaled_money_columns(ratings: Sequence[AnyRating]) -> list[list[int]]:
    """The ``MONEY_COLUMNS`` of ``ratings`` in 1e-18 USD. A slice of scaled token ratings only
    (the stream's usual one) is read from their ``costs`` tuples in C; any other rating is
    converted by ``pricing.scaled.scaled_money`` (equal values: tests/test_columns.py)."""
    count = len(ratings)
    if set(map(type, ratings)) == {ScaledRating}:
        costs = list(map(attrgetter("costs"), ratings))
        tokens = [list(column) for column in zip(*costs, strict=True)]
        # a scaled rating has no units and avoids nothing (two lists: ledger_columns extends each)
        return [*tokens, [0] * count, list(map(sum, costs)), [0] * count]
    amounts = list(map(to_scaled_money, ratings))
    return [list(map(itemgetter(index), amounts)) for index in range(len(MONEY_COLUMNS))]


class OutcomeEntry(msgspec.Struct, frozen=True, gc=False):
    """A validated outcome event, ready for the ``outcomes`` table (a struct as
    :class:`LedgerEntry`)."""

    event: OutcomeEvent
    origin: KafkaOrigin = KafkaOrigin()
