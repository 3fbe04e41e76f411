"""Token pricing in exact scaled integers: the same costs as :mod:`spendstream.pricing.costs`,
as whole numbers of 1e-18 USD (the ledger's ``Decimal(38, 18)`` unit), without ``Decimal``.

A per-token rate ``c × 10^e`` (its ``Decimal`` coefficient and exponent) becomes an integer
multiplier, and for rates finer than 1e-18 a power-of-ten divisor: ``tokens × c`` is then exact
integer arithmetic, and the division rounds half to even, as ``Decimal.quantize`` does in the
``EXACT`` context of :mod:`spendstream.pricing.compiled`. That context keeps 60 digits, so
``Decimal`` is exact when ``tokens × c`` has at most 60; a rate whose coefficient could make it
longer (none today: catalog prices have a few digits) or a negative one is not scaled, and
events priced with it go through :meth:`Pricer.rate` instead (:meth:`ScaledPricer.rate`).

Only the common case is scaled: an event priced by its tokens (catalog row or override), without
units and not answered from the app's cache. Everything else (unpriced, units, cached answers)
is :meth:`Pricer.rate`'s ``Rating``, unchanged. ``tests/test_pricing_scaled.py`` proves both give
the same money to the last digit over every token type, tier, batch rate and override.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal

import msgspec

from spendstream.events import UsageRecord
from spendstream.pricing.compiled import EXACT, TokenRates
from spendstream.pricing.costs import ZERO, Rating
from spendstream.pricing.platforms import Placed, Placement
from spendstream.pricing.rating import Pricer

SCALE = 18  # digits after the point: 1e-18 USD
MAX_TOKEN_DIGITS = 13  # tokens <= 10**12 (events.TokenCount)
# Turns a scaled integer back into the Decimal the Decimal path produces (exponent -18): wide
# enough for any Decimal(38, 18) value, so scaleb never rounds.
_BACK = Context(prec=60)
# One entry per distinct rate set; a resolution rebuilt by the Pricer's cache adds one more.
MAX_CACHED_RATES = 65_536


@dataclass(frozen=True, slots=True)
class ScaledRate:
    """A per-token rate as ``multiplier / divisor`` in 1e-18 USD (``divisor`` 1 when the rate
    has at most 18 decimals; else a power of ten, rounded half to even)."""

    multiplier: int
    divisor: int

    @classmethod
    def of(cls, rate: Decimal) -> ScaledRate | None:
        """``rate`` scaled, or None when integer arithmetic could differ from ``Decimal``'s."""
        sign, digits, exponent = rate.as_tuple()
        if sign or not isinstance(exponent, int) or len(digits) + MAX_TOKEN_DIGITS > EXACT.prec:
            return None
        coefficient = int("".join(map(str, digits)) or "0")
        if exponent >= -SCALE:
            return cls(coefficient * 10 ** (exponent + SCALE), 1)
        return cls(coefficient, 10 ** (-SCALE - exponent))

    def cost(self, tokens: int) -> int:
        """``tokens × rate`` in 1e-18 USD, rounded half to even (``tokens`` >= 0)."""
        amount = tokens * self.multiplier
        if self.divisor == 1:
            return amount
        whole, rest = divmod(amount, self.divisor)
        twice = rest * 2
        if twice > self.divisor or (twice == self.divisor and whole & 1):
            whole += 1
        return whole


@dataclass(frozen=True, slots=True)
class ScaledTokenRates:
    """:class:`~spendstream.pricing.compiled.TokenRates` scaled (``reasoning`` None: billed as
    output)."""

    input: ScaledRate
    output: ScaledRate
    cache_read: ScaledRate
    cache_write: ScaledRate
    reasoning: ScaledRate | None

    @classmethod
    def of(cls, rates: TokenRates) -> ScaledTokenRates | None:
        """``rates`` scaled, or None when one of them cannot be (see :meth:`ScaledRate.of`)."""
        scaled = [ScaledRate.of(rate) for rate in (rates.input, rates.output)]
        scaled += [ScaledRate.of(rates.cache_read), ScaledRate.of(rates.cache_write)]
        reasoning = None if rates.reasoning is None else ScaledRate.of(rates.reasoning)
        if None in scaled or (rates.reasoning is not None and reasoning is None):
            return None
        input_rate, output, cache_read, cache_write = scaled
        assert input_rate and output and cache_read and cache_write  # checked just above
        return cls(input_rate, output, cache_read, cache_write, reasoning)


def to_decimal(scaled: int) -> Decimal:
    """A cost in 1e-18 USD as the Decimal the Decimal path holds (``0E-18`` for zero)."""
    return Decimal(scaled).scaleb(-SCALE, _BACK) if scaled else ZERO


def to_scaled(value: Decimal) -> int:
    """A cost quantized to 1e-18 USD (a ``Rating``'s) as whole 1e-18 USD."""
    return int(value.scaleb(SCALE, _BACK))


class ScaledRating(msgspec.Struct, Placed, frozen=True, gc=False):
    """A priced token rating in 1e-18 USD: ``costs`` is (input, output, cache_read, cache_write,
    reasoning). Reads like a :class:`~spendstream.pricing.costs.Rating` (its cost properties
    return the same Decimals); no units, nothing avoided, no 1-hour cache writes (those events
    are rated by the Decimal path)."""

    price_ref: str
    model_key: str
    placement: Placement
    costs: tuple[int, int, int, int, int]

    priced = True
    unpriced_reason = ""
    units = ()

    @property
    def cost_input(self) -> Decimal:
        return to_decimal(self.costs[0])

    @property
    def cost_output(self) -> Decimal:
        return to_decimal(self.costs[1])

    @property
    def cost_cache_read(self) -> Decimal:
        return to_decimal(self.costs[2])

    @property
    def cost_cache_write(self) -> Decimal:
        return to_decimal(self.costs[3])

    @property
    def cost_reasoning(self) -> Decimal:
        return to_decimal(self.costs[4])

    @property
    def cost_units(self) -> Decimal:
        return ZERO

    @property
    def cost_cache_write_1h(self) -> Decimal:
        return ZERO

    @property
    def cost_avoided(self) -> Decimal:
        return ZERO

    @property
    def cost_total(self) -> Decimal:
        return to_decimal(sum(self.costs))


AnyRating = Rating | ScaledRating


def scaled_money(rating: AnyRating) -> tuple[int, int, int, int, int, int, int, int]:
    """The ledger's money columns of ``rating`` in 1e-18 USD: the five token costs, then
    ``cost_units``, ``cost_total`` and ``cost_avoided``."""
    if isinstance(rating, ScaledRating):
        costs = rating.costs
        return (*costs, 0, sum(costs), 0)
    units = to_scaled(rating.cost_units)
    tokens = tuple(
        to_scaled(cost)
        for cost in (
            rating.cost_input,
            rating.cost_output,
            rating.cost_cache_read,
            rating.cost_cache_write,
            rating.cost_reasoning,
        )
    )
    a, b, c, d, e = tokens
    return (a, b, c, d, e, units, a + b + c + d + e + units, to_scaled(rating.cost_avoided))


class ScaledPricer:
    """Prices events like ``pricer`` (:meth:`Pricer.rate`), token costs in scaled integers."""

    def __init__(self, pricer: Pricer) -> None:
        self.pricer = pricer
        # id(TokenRates) -> (the rates, kept alive so the id stays theirs; scaled or None)
        self._scaled: dict[int, tuple[TokenRates, ScaledTokenRates | None]] = {}

    def rate(self, event: UsageRecord) -> AnyRating:
        """The rating of ``event``: equal money to ``pricer.rate(event)``, always."""
        if event.units or event.response_cached or event.cache_write_1h_tokens:
            return self.pricer.rate(event)
        resolution = self.pricer.resolve(event)
        when = event.event_time
        compiled = resolution.model
        index = compiled.index_at(when) if compiled is not None else -1
        point = None
        for plan in resolution.plans:
            override = plan.override
            if override.in_force(when) and override.tags_match(event.tags):
                point = plan.point(index)
                if point is not None:
                    break
        if point is None:
            if compiled is None or index < 0:  # unpriced: the reason is the Pricer's
                return self.pricer.rate(event)
            point = compiled.points[index]
        ref, rates = point.select(event.input_tokens, event.batch)
        scaled = self._scaled_rates(rates)
        if scaled is None:
            return self.pricer.rate(event)
        uncached = event.input_tokens - event.cache_read_tokens - event.cache_write_tokens
        output, reasoning = event.output_tokens, 0
        if scaled.reasoning is not None:
            output -= event.reasoning_tokens
            reasoning = scaled.reasoning.cost(event.reasoning_tokens)
        costs = (
            scaled.input.cost(uncached),
            scaled.output.cost(output),
            scaled.cache_read.cost(event.cache_read_tokens),
            scaled.cache_write.cost(event.cache_write_tokens),
            reasoning,
        )
        return ScaledRating(ref, resolution.model_key, resolution.placement, costs)

    def _scaled_rates(self, rates: TokenRates) -> ScaledTokenRates | None:
        found = self._scaled.get(id(rates))
        if found is None:
            if len(self._scaled) >= MAX_CACHED_RATES:
                self._scaled.clear()
            found = (rates, ScaledTokenRates.of(rates))
            self._scaled[id(rates)] = found
        return found[1]
