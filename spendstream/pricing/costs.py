"""A rating (the cost of one event, by token type and unit) and the token cost rule.

See :mod:`spendstream.pricing.rating` for the rule; this module holds the value it produces.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from spendstream.events import UsageRecord
from spendstream.pricing.compiled import EXACT, TokenRates
from spendstream.pricing.platforms import DIRECT_API, Placed, Placement
from spendstream.pricing.units import COST_QUANTUM, UnitCost

ZERO = Decimal(0).quantize(COST_QUANTUM)


@dataclass(frozen=True, slots=True)
class Rating(Placed):
    """The cost of one event. ``priced`` is False when no price applies (never a silent $0).

    ``price_ref`` names the price used: ``provider/model@effective_from`` for a catalog row,
    ``...>200000`` for a long-context tier, ``...+override:NAME`` for an override.
    ``model_key`` is the normalised ``provider/model`` (also set when unpriced).
    """

    priced: bool
    price_ref: str
    cost_input: Decimal = ZERO
    cost_output: Decimal = ZERO
    cost_cache_read: Decimal = ZERO
    cost_cache_write: Decimal = ZERO
    cost_reasoning: Decimal = ZERO
    unpriced_reason: str = ""
    model_key: str = ""
    cost_avoided: Decimal = ZERO
    units: tuple[UnitCost, ...] = ()  # priced units, sorted by name (empty when unpriced)
    placement: Placement = DIRECT_API  # where the call was served, also when unpriced
    # The part of cost_cache_write for 1-hour writes (ledger column cost_cache_write_1h): kept
    # apart so the FOCUS export shows each write rate on its own row; never added to the total.
    cost_cache_write_1h: Decimal = ZERO

    @property
    def cost_units(self) -> Decimal:
        return sum((unit.cost for unit in self.units), ZERO)

    @property
    def cost_total(self) -> Decimal:
        return (
            self.cost_input
            + self.cost_output
            + self.cost_cache_read
            + self.cost_cache_write
            + self.cost_reasoning
            + self.cost_units
        )


def _cost(tokens: int, per_token: Decimal) -> Decimal:
    if not tokens:
        return ZERO
    return EXACT.multiply(tokens, per_token).quantize(COST_QUANTUM, context=EXACT)


def apply_rates(
    rates: TokenRates, event: UsageRecord, ref: str, model_key: str, placement: Placement
) -> Rating:
    """The cost rule of :mod:`spendstream.pricing.rating` applied to ``event``'s tokens."""
    uncached = event.input_tokens - event.cache_read_tokens - event.cache_write_tokens
    hour = event.cache_write_1h_tokens  # a part of cache_write_tokens, at its own rate
    cost_hour = _cost(hour, rates.cache_write_1h)
    if rates.reasoning is None:
        output_tokens, cost_reasoning = event.output_tokens, ZERO
    else:
        output_tokens = event.output_tokens - event.reasoning_tokens
        cost_reasoning = _cost(event.reasoning_tokens, rates.reasoning)
    return Rating(  # positional: the hot path (keywords cost more per event)
        True,
        ref,
        _cost(uncached, rates.input),
        _cost(output_tokens, rates.output),
        _cost(event.cache_read_tokens, rates.cache_read),
        _cost(event.cache_write_tokens - hour, rates.cache_write) + cost_hour,
        cost_reasoning,
        "",
        model_key,
        ZERO,
        (),
        placement,
        cost_hour,
    )
