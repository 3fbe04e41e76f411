"""Re-pricing token sums, exactly (pure Decimal, no per-event work): at catalog list prices,
or at the prices the ledger's pricing applies (negotiated overrides included).

A rating is linear in the token counts once its rates are fixed, and the rates of an event
depend only on its model, the price row in force, its long-context tier and ``batch``. So SQL
groups events by (model, UTC day, tier bucket, batch) and sums their tokens; this module prices
each sum with the rates that apply to every event of the group. Every shipped per-token rate has
at most 10 decimals, so the products are exact and equal the sum of per-event ratings.

``ListPrices.effective`` gives the rates the ledger's pricing applies (a negotiated override in
force for the group's tags, else the catalog row), :meth:`ListPrices.rates` the catalog's list
rates alone.

Caveat: the price row is the one in force at 00:00 UTC of the day (catalog rows start on dates;
an override starting or ending within a day is read as at that day's start).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from spendstream.pricing import Pricer
from spendstream.pricing.compiled import EXACT, CompiledModel, PricePoint, TokenRates

TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
# Aliased apart from the columns: the bucket expression reads the per-event input_tokens.
TOKEN_SUMS = ", ".join(f"sum({name}) AS sum_{name}" for name in (*TOKENS, "reasoning_tokens"))


def tier_thresholds(pricer: Pricer) -> list[int]:
    """Every long-context threshold in the catalog, ascending: the bucket edges."""
    edges = {
        tier.above_input_tokens
        for entry in pricer.catalog.models
        for row in entry.prices
        for tier in row.tiers
    }
    return sorted(edges)


BUCKET_SQL = "arrayCount(t -> input_tokens > t, {thresholds:Array(UInt64)})"
"""SQL: how many thresholds an event's input exceeds (its tier bucket); needs ``thresholds``."""


# Token counts; Decimal where a what-if assumes a share of them (spendstream.advice.whatif).
Count = int | Decimal


@dataclass(frozen=True)
class TokenSums:
    input_tokens: Count
    output_tokens: Count
    cache_read_tokens: Count
    cache_write_tokens: Count
    reasoning_tokens: Count

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> TokenSums:
        return cls(*(int(row[f"sum_{name}"] or 0) for name in (*TOKENS, "reasoning_tokens")))


class ListPrices:
    """Rates of catalog models by (day, tier bucket, batch), for groups of events."""

    def __init__(self, pricer: Pricer) -> None:
        self.pricer = pricer
        self.thresholds = tier_thresholds(pricer)
        # The tag keys some override matches on: a group must keep them to find its price.
        self.override_tag_keys = frozenset(
            key for override in pricer.overrides for key in override.tags
        )

    def model(self, provider: str, model: str) -> CompiledModel | None:
        return self.pricer.find_model(provider, model)

    def rates(self, model: CompiledModel, day: Any, bucket: int, batch: bool) -> TokenRates | None:
        """The rates of ``model`` for a group's events; None before its first price."""
        index = model.index_at(_start(day))
        if index < 0:
            return None
        return model.points[index].select(self.representative(bucket), batch)[1]

    def cost(self, model: CompiledModel, row: Mapping[str, Any]) -> Decimal | None:
        """List cost of a group row (``day``, ``bucket``, ``batch`` and token sums)."""
        rates = self.rates(model, row["day"], int(row["bucket"]), _bool(row["batch"]))
        return None if rates is None else cost_of(TokenSums.of(row), rates)

    def point(
        self, provider: str, model: str, day: Any, tags: Mapping[str, str]
    ) -> tuple[PricePoint, Decimal] | None:
        """The price the ledger's pricing gives ``provider``/``model`` calls with ``tags`` on
        ``day`` (overrides and price versions included, :meth:`Pricer.price_point`) and its
        batch discount; None when it has none."""
        return self.pricer.price_point(provider, model, _start(day), dict(tags))

    def effective(
        self, provider: str, model: str, row: Mapping[str, Any], tags: Mapping[str, str]
    ) -> TokenRates | None:
        """The rates the ledger's pricing applies to a group row's events (``day``,
        ``bucket``, ``batch``) of ``provider``/``model`` with ``tags``; None without a price."""
        found = self.point(provider, model, row["day"], tags)
        if found is None:
            return None
        return found[0].select(self.representative(int(row["bucket"])), _bool(row["batch"]))[1]

    def effective_cost(
        self, provider: str, model: str, row: Mapping[str, Any], tags: Mapping[str, str]
    ) -> Decimal | None:
        """:meth:`effective` applied to the row's token sums."""
        rates = self.effective(provider, model, row, tags)
        return None if rates is None else cost_of(TokenSums.of(row), rates)

    def representative(self, bucket: int) -> int:
        """An input token count in tier bucket ``bucket`` (what selects the tier's rates)."""
        return self.thresholds[bucket - 1] + 1 if bucket else 0


def cost_of(tokens: TokenSums, rates: TokenRates) -> Decimal:
    """The pricing rule (spendstream.pricing.rating) applied to token sums."""
    uncached = tokens.input_tokens - tokens.cache_read_tokens - tokens.cache_write_tokens
    parts = [
        (uncached, rates.input),
        (tokens.cache_read_tokens, rates.cache_read),
        (tokens.cache_write_tokens, rates.cache_write),
    ]
    if rates.reasoning is None:
        parts.append((tokens.output_tokens, rates.output))
    else:
        parts.append((tokens.output_tokens - tokens.reasoning_tokens, rates.output))
        parts.append((tokens.reasoning_tokens, rates.reasoning))
    total = Decimal(0)
    for count, rate in parts:
        total = EXACT.add(total, EXACT.multiply(count, rate))
    return total


def _start(day: Any) -> datetime:
    """00:00 UTC of a group's day: the moment whose prices the group is given."""
    return datetime.combine(_day(day), time(0), tzinfo=UTC)


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _bool(value: Any) -> bool:
    return value in (True, 1, "true", "1", "True")
