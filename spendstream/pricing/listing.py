"""Data behind ``spendstream prices list|show|check`` (plain structures; rendering is in cli.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from spendstream.pricing.catalog import (
    ModelEntry,
    PriceRow,
    PricingError,
    Rates,
    load_catalog,
)
from spendstream.pricing.overrides import Override, load_override_file
from spendstream.pricing.rating import Pricer, validate_overrides


@dataclass(frozen=True, slots=True)
class PriceLine:
    """One price row as shown to users (USD per million tokens; None = not separately priced)."""

    provider: str
    model: str
    kind: str
    effective_from: datetime
    input: Decimal
    output: Decimal
    cache_read: Decimal | None
    cache_write: Decimal | None
    cache_write_1h: Decimal | None
    reasoning: Decimal | None
    batch_discount: Decimal
    long_context: list[tuple[int, Rates]]
    source: str


@dataclass(frozen=True, slots=True)
class ModelDetail:
    """Everything known about one catalog model: all rows (oldest first) and overrides."""

    entry: ModelEntry
    lines: list[PriceLine]
    overrides: list[Override] = field(default_factory=list)


def _line(pricer: Pricer, entry: ModelEntry, row: PriceRow) -> PriceLine:
    return PriceLine(
        provider=entry.provider,
        model=entry.model,
        kind=entry.kind,
        effective_from=row.effective_from,
        input=row.input,
        output=row.output,
        cache_read=row.cache_read,
        cache_write=row.cache_write,
        cache_write_1h=row.cache_write_1h,
        reasoning=row.reasoning,
        batch_discount=pricer.catalog.batch_discount(entry),
        long_context=[(tier.above_input_tokens, tier) for tier in row.tiers],
        source=entry.source,
    )


def price_list(
    pricer: Pricer, provider: str | None = None, at: datetime | None = None
) -> list[PriceLine]:
    """The catalog row in force at ``at`` (default: now) for every model, sorted by name.

    ``provider`` may be a catalog provider or an alias (``azure`` lists openai).
    """
    when = at or datetime.now(UTC)
    wanted = pricer.canonical_provider(provider) if provider else None
    if provider and wanted is None:
        raise PricingError(
            f"unknown provider {provider!r}; known: {', '.join(sorted(pricer.catalog.providers))}"
        )
    lines = []
    for entry in pricer.catalog.models:
        if wanted and entry.provider != wanted:
            continue
        in_force = [row for row in entry.prices if row.effective_from <= when]
        if in_force:
            lines.append(_line(pricer, entry, in_force[-1]))
    return sorted(lines, key=lambda line: (line.provider, line.model))


def show_model(pricer: Pricer, model: str, provider: str | None = None) -> list[ModelDetail]:
    """Every provider's entry that ``model`` resolves to (e.g. Claude on anthropic and bedrock).

    Raises :class:`PricingError` when the name resolves nowhere.
    """
    providers = [provider] if provider else sorted(pricer.catalog.providers)
    details = []
    for name in providers:
        compiled = pricer.find_model(name, model)
        if compiled is None:
            continue
        entry = compiled.entry
        overrides = [
            override
            for override in pricer.overrides
            if pricer.canonical_provider(override.provider) == entry.provider
            and override.model in ("*", entry.model)
        ]
        lines = [_line(pricer, entry, row) for row in entry.prices]
        details.append(ModelDetail(entry, lines, overrides))
    if not details:
        where = f"provider {provider!r}" if provider else "any provider"
        raise PricingError(
            f"unknown model {model!r} for {where}; see `spendstream prices list` for names"
        )
    return details


@dataclass(frozen=True, slots=True)
class UnitPriceLine:
    """One unit price in force: USD ``price`` per ``per`` units, from the catalog or an
    override (``origin`` is the source URL or ``override NAME``)."""

    provider: str
    model: str
    unit: str
    price: Decimal
    per: Decimal
    effective_from: datetime | None
    origin: str


def unit_price_list(
    pricer: Pricer, provider: str | None = None, at: datetime | None = None
) -> list[UnitPriceLine]:
    """Every unit price in force at ``at`` (default: now): catalog ``[[units]]`` rows, then the
    overrides' ``unit_prices``; sorted by provider, model and unit."""
    when = at or datetime.now(UTC)
    wanted = pricer.canonical_provider(provider) if provider else None
    lines = []
    for entry in pricer.catalog.units:
        if wanted and entry.provider != wanted:
            continue
        in_force = [row for row in entry.prices if row.effective_from <= when]
        if not in_force:
            continue
        row = in_force[-1]
        for model in entry.models:
            for unit, rate in row.rates.items():
                lines.append(
                    UnitPriceLine(
                        entry.provider,
                        model,
                        unit,
                        rate.price,
                        rate.per,
                        row.effective_from,
                        entry.source,
                    )
                )
    for override in pricer.overrides:
        if (provider and override.provider not in (provider, wanted)) or not override.in_force(
            when
        ):
            continue
        for unit, rate in override.unit_prices.items():
            lines.append(
                UnitPriceLine(
                    override.provider,
                    override.model,
                    unit,
                    rate.price,
                    rate.per,
                    override.effective_from,
                    f"override {override.name}",
                )
            )
    return sorted(lines, key=lambda line: (line.provider, line.model, line.unit, line.origin))


def check_override_file(path: Path, catalog_file: Path | None = None) -> list[Override]:
    """Validate an override file against the catalog; raises :class:`PricingError` if invalid."""
    return validate_overrides(load_catalog(catalog_file), load_override_file(path), str(path))
