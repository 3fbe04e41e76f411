"""Catalog rows and overrides compiled into per-token Decimal rates for fast rating.

Everything here is immutable once built, so a :class:`~spendstream.pricing.Pricer` can be
shared between threads.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Context, Decimal

from spendstream.pricing.catalog import ModelEntry, PriceRow, Rates
from spendstream.pricing.overrides import Override

PER_MILLION = Decimal(1_000_000)
ONE = Decimal(1)
EARLIEST = datetime.min.replace(tzinfo=UTC)
# Wide enough that tokens (<= 1e12) x any per-token rate is exact before quantizing to 1e-18.
EXACT = Context(prec=60)


@dataclass(frozen=True, slots=True)
class TokenRates:
    """USD per single token. Cache rates already default to ``input`` where the source had none,
    the 1-hour write rate to the (5-minute) write rate; ``reasoning`` stays None when reasoning
    is billed as output."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    reasoning: Decimal | None
    cache_write_1h: Decimal

    @classmethod
    def from_rates(cls, rates: Rates, factor: Decimal = ONE) -> TokenRates:
        """Per-million ``rates`` scaled by ``factor`` (e.g. 0.5 for a 50 % batch discount)."""
        scale = EXACT.divide(factor, PER_MILLION)

        def per_token(value: Decimal | None, default: Decimal) -> Decimal:
            return EXACT.multiply(default if value is None else value, scale)

        return cls(
            input=per_token(rates.input, rates.input),
            output=per_token(rates.output, rates.output),
            cache_read=per_token(rates.cache_read, rates.input),
            cache_write=per_token(rates.cache_write, rates.input),
            reasoning=None if rates.reasoning is None else per_token(rates.reasoning, ONE),
            cache_write_1h=per_token(
                rates.cache_write_1h,
                rates.input if rates.cache_write is None else rates.cache_write,
            ),
        )


@dataclass(frozen=True, slots=True)
class PricePoint:
    """One price in force: standard and batch rates, plus long-context tiers (highest first)."""

    ref: str
    standard: TokenRates
    batch: TokenRates
    tiers: tuple[tuple[int, str, TokenRates, TokenRates], ...] = ()

    def select(self, input_tokens: int, batch: bool) -> tuple[str, TokenRates]:
        """The rates for an event: the highest tier whose threshold ``input_tokens`` exceeds."""
        for threshold, ref, standard, batched in self.tiers:
            if input_tokens > threshold:
                return ref, batched if batch else standard
        return self.ref, self.batch if batch else self.standard


def compile_row(
    ref: str, row: PriceRow, batch_discount: Decimal, factor: Decimal = ONE, suffix: str = ""
) -> PricePoint:
    """A catalog row as a :class:`PricePoint`; ``factor`` applies a negotiated discount.

    Refs: ``ref`` (+ ``>threshold`` for a tier) + ``suffix`` (e.g. ``+override:NAME``).
    """
    batch_factor = factor * (ONE - batch_discount)
    tiers = tuple(
        (
            tier.above_input_tokens,
            f"{ref}>{tier.above_input_tokens}{suffix}",
            TokenRates.from_rates(tier, factor),
            TokenRates.from_rates(tier, batch_factor),
        )
        for tier in reversed(row.tiers)
    )
    return PricePoint(
        ref=ref + suffix,
        standard=TokenRates.from_rates(row, factor),
        batch=TokenRates.from_rates(row, batch_factor),
        tiers=tiers,
    )


@dataclass(frozen=True, slots=True)
class CompiledModel:
    """A catalog entry's effective-dated prices (its base rows, or its rows on one platform),
    ready for :meth:`index_at`. ``label`` names the platform rows (``azure/eu``; empty: base)."""

    entry: ModelEntry
    batch_discount: Decimal
    starts: tuple[datetime, ...]
    points: tuple[PricePoint, ...]
    rows: tuple[PriceRow, ...]
    label: str = ""

    @classmethod
    def build(
        cls,
        entry: ModelEntry,
        batch_discount: Decimal,
        rows: Sequence[PriceRow] | None = None,
        label: str = "",
        inherited: int = 0,
    ) -> CompiledModel:
        """``entry``'s base rows, or ``rows`` (its platform rows, refs ``key[label]@date``, but
        for the first ``inherited``: base rows, refs ``key@date``)."""
        chosen = tuple(entry.prices if rows is None else rows)
        prefixes = [entry.key] * inherited
        prefixes += [f"{entry.key}[{label}]" if label else entry.key] * (len(chosen) - inherited)
        points = tuple(
            compile_row(f"{prefix}@{row.effective_from.date().isoformat()}", row, batch_discount)
            for prefix, row in zip(prefixes, chosen, strict=True)
        )
        starts = tuple(row.effective_from for row in chosen)
        return cls(entry, batch_discount, starts, points, chosen, label)

    def index_at(self, when: datetime) -> int:
        """Index of the row in force at ``when``, or -1 before the first row."""
        return bisect_right(self.starts, when) - 1


@dataclass(frozen=True, slots=True)
class OverridePlan:
    """An override compiled against the model it matched.

    ``points`` holds one absolute point, or (discounts) one scaled point per catalog row.
    """

    override: Override
    absolute: bool
    points: tuple[PricePoint, ...]
    batch_discount: Decimal = Decimal(0)  # what its batch rates take off its standard ones

    def point(self, catalog_index: int) -> PricePoint | None:
        if not self.points:  # a units-only override, or a discount on an unknown model
            return None
        if self.absolute:
            return self.points[0]
        return self.points[catalog_index] if catalog_index >= 0 else None


def plan_override(override: Override, model_key: str, model: CompiledModel | None) -> OverridePlan:
    """Compile ``override`` for ``model_key``; a discount needs the catalog ``model``."""
    if not override.prices_tokens:
        return OverridePlan(override, True, ())
    if override.discount is None:
        assert override.input is not None and override.output is not None  # validated
        rates = Rates(
            input=override.input,
            output=override.output,
            cache_read=override.cache_read,
            cache_write=override.cache_write,
            reasoning=override.reasoning,
        )
        batch_discount = override.batch_discount
        if batch_discount is None:
            batch_discount = model.batch_discount if model else Decimal(0)
        point = PricePoint(
            ref=f"{model_key}+override:{override.name}",
            standard=TokenRates.from_rates(rates),
            batch=TokenRates.from_rates(rates, ONE - batch_discount),
        )
        return OverridePlan(override, True, (point,), batch_discount)
    if model is None:
        return OverridePlan(override, False, ())
    factor = ONE - override.discount
    batch_discount = (
        model.batch_discount if override.batch_discount is None else override.batch_discount
    )
    points = tuple(
        compile_row(point.ref, row, batch_discount, factor, f"+override:{override.name}")
        for point, row in zip(model.points, model.rows, strict=True)
    )
    return OverridePlan(override, False, points, batch_discount)


def specificity(override: Override, order: int) -> tuple[int, int, datetime, int]:
    """Sort key, highest wins: more tags, a named model over '*', later start, later in file."""
    return (
        len(override.tags),
        int(override.model != "*"),
        override.effective_from or EARLIEST,
        order,
    )
