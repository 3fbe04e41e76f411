"""Rating: usage event + price table -> exact cost by token type (Decimal, USD)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal

from spendstream.events import UsageEvent

PER_MILLION = Decimal(1_000_000)
COST_QUANTUM = Decimal("1e-18")  # ledger columns are Decimal(38, 18)
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Rating:
    """The cost of one event. ``priced`` is False when no price applies (never a silent $0)."""

    priced: bool
    price_ref: str
    cost_input: Decimal = ZERO
    cost_output: Decimal = ZERO
    cost_cache_read: Decimal = ZERO
    cost_cache_write: Decimal = ZERO
    cost_reasoning: Decimal = ZERO
    unpriced_reason: str = ""

    @property
    def cost_total(self) -> Decimal:
        return (
            self.cost_input
            + self.cost_output
            + self.cost_cache_read
            + self.cost_cache_write
            + self.cost_reasoning
        )


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens. Cache and reasoning default to the input/output rate."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None


# Placeholder table for the skeleton; the full effective-dated catalog replaces it (issue 4).
BUILTIN_PRICES: dict[str, ModelPrice] = {
    "openai/gpt-4o": ModelPrice(Decimal("2.50"), Decimal("10.00"), Decimal("1.25")),
    "openai/gpt-4o-mini": ModelPrice(Decimal("0.15"), Decimal("0.60"), Decimal("0.075")),
    "anthropic/claude-sonnet-4-5": ModelPrice(
        Decimal("3.00"), Decimal("15.00"), Decimal("0.30"), Decimal("3.75")
    ),
    "anthropic/claude-haiku-4-5": ModelPrice(
        Decimal("1.00"), Decimal("5.00"), Decimal("0.10"), Decimal("1.25")
    ),
    "google/gemini-2.5-flash": ModelPrice(Decimal("0.30"), Decimal("2.50"), Decimal("0.03")),
}


def _cost(tokens: int, per_million: Decimal) -> Decimal:
    return (tokens * per_million / PER_MILLION).quantize(COST_QUANTUM)


class Pricer:
    """Prices events from a table keyed by ``provider/model``."""

    def __init__(self, prices: dict[str, ModelPrice]) -> None:
        self._prices = prices
        canonical = json.dumps({key: repr(price) for key, price in prices.items()}, sort_keys=True)
        self.catalog_digest = hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def rate(self, event: UsageEvent) -> Rating:
        key = f"{event.provider}/{event.model}"
        price = self._prices.get(key)
        if price is None:
            return Rating(priced=False, price_ref="", unpriced_reason=f"no price for {key}")
        uncached = event.input_tokens - event.cache_read_tokens - event.cache_write_tokens
        return Rating(
            priced=True,
            price_ref=key,
            cost_input=_cost(uncached, price.input),
            cost_output=_cost(event.output_tokens, price.output),
            cost_cache_read=_cost(event.cache_read_tokens, price.cache_read or price.input),
            cost_cache_write=_cost(event.cache_write_tokens, price.cache_write or price.input),
        )


def default_pricer() -> Pricer:
    """The pricer the worker uses when no catalog override is configured."""
    return Pricer(BUILTIN_PRICES)
