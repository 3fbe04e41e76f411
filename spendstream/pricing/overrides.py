"""Negotiated-price overrides and the ``[pricing]`` config table.

An override file is TOML with one ``[[overrides]]`` table per negotiated price::

    [[overrides]]
    name = "acme-anthropic-2025"      # shown in Rating.price_ref
    provider = "anthropic"            # catalog provider or alias; "azure" matches only azure events
    model = "claude-sonnet-4-5"       # normalised like event names; "*" = every model of provider
    effective_from = 2025-01-01       # optional; inclusive, dates are 00:00 UTC
    effective_until = 2026-01-01      # optional; exclusive
    tags = { team = "research" }      # optional; every tag must equal the event's tag
    # either absolute USD per million tokens (input and output required) ...
    input = 2.70
    output = 13.50
    cache_read = 0.27                 # optional; absent = billed at input
    cache_write = 3.375               # optional; absent = billed at input
    reasoning = 13.50                 # optional; only if reasoning has its own rate
    batch_discount = 0.5              # optional; absent = the catalog model's batch discount
    # ... or a discount off the catalog price in force (all rates, tiers and unit prices scaled):
    # discount = 0.15
    # Usage units (docs/cost-drivers.md): USD `price` per `per` units; with or without token prices
    unit_prices = { vector_queries = { price = 0.40, per = 1000 }, gpu_hours = { price = 2.10 } }

The ``[pricing]`` table of the config file takes ``catalog_file`` (replaces the shipped catalog),
``overrides_file`` and inline ``[[pricing.overrides]]`` tables of the same shape.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from spendstream.events import UnitName
from spendstream.pricing.catalog import (
    Fraction,
    Price,
    PricingError,
    UnitRate,
    describe_errors,
    flatten_unit_names,
    read_toml_decimal,
    to_utc_datetime,
)

OverrideName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._\-]+$")]


class Override(BaseModel):
    """One negotiated price; see the module docstring for the file format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: OverrideName
    provider: Annotated[str, Field(min_length=1, max_length=64)]
    model: Annotated[str, Field(min_length=1, max_length=200)]
    effective_from: datetime | None = None
    effective_until: datetime | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    input: Price | None = None
    output: Price | None = None
    cache_read: Price | None = None
    cache_write: Price | None = None
    reasoning: Price | None = None
    batch_discount: Fraction | None = None
    discount: Fraction | None = None
    unit_prices: dict[UnitName, UnitRate] = Field(default_factory=dict)

    @field_validator("effective_from", "effective_until", mode="before")
    @classmethod
    def _date_to_utc(cls, value: Any) -> Any:
        return to_utc_datetime(value)

    @field_validator("unit_prices", mode="before")
    @classmethod
    def _flat_names(cls, value: Any) -> Any:
        return flatten_unit_names(value)

    @field_validator("provider", "model")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()

    @model_validator(mode="after")
    def _one_kind(self) -> Override:
        absolute = [
            key
            for key in ("input", "output", "cache_read", "cache_write", "reasoning")
            if getattr(self, key) is not None
        ]
        if self.discount is not None and absolute:
            raise ValueError(
                f"override {self.name!r} sets both discount and {', '.join(absolute)}; "
                "keep either the discount or the absolute prices"
            )
        if self.discount is None and (self.input is None) != (self.output is None):
            raise ValueError(
                f"override {self.name!r} needs input and output prices (USD per million "
                "tokens), or a discount such as discount = 0.15"
            )
        if self.discount is None and self.input is None and not self.unit_prices:
            raise ValueError(
                f"override {self.name!r} needs input and output prices (USD per million "
                "tokens), a discount such as discount = 0.15, or unit_prices"
            )
        if self.model == "*" and self.discount is None and self.input is not None:
            raise ValueError(
                f"override {self.name!r}: model = '*' only works with a discount or "
                "unit_prices; name the model to give absolute token prices"
            )
        if (
            self.effective_from is not None
            and self.effective_until is not None
            and self.effective_until <= self.effective_from
        ):
            raise ValueError(
                f"override {self.name!r}: effective_until must be after effective_from"
            )
        return self

    @property
    def prices_tokens(self) -> bool:
        """True when this override sets token prices (absolute or a discount)."""
        return self.discount is not None or self.input is not None

    def in_force(self, when: datetime) -> bool:
        if self.effective_from is not None and when < self.effective_from:
            return False
        return self.effective_until is None or when < self.effective_until

    def tags_match(self, tags: dict[str, str]) -> bool:
        return all(tags.get(key) == value for key, value in self.tags.items())


class OverrideFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Annotated[int, Field(ge=1, le=1)] = 1
    overrides: list[Override] = Field(default_factory=list)


class PricingConfig(BaseModel):
    """The ``[pricing]`` table of the config file."""

    model_config = ConfigDict(extra="forbid")

    catalog_file: str | None = None
    overrides_file: str | None = None
    overrides: list[Override] = Field(default_factory=list)


def check_unique_names(overrides: list[Override], where: str) -> None:
    seen: set[str] = set()
    for override in overrides:
        if override.name in seen:
            raise PricingError(
                f"{where}: override name {override.name!r} is used twice; names identify a "
                "price in the ledger (price_ref), so give each override its own name"
            )
        seen.add(override.name)


def load_override_file(path: Path) -> list[Override]:
    """Read and validate an override file; raises :class:`PricingError` naming file, key, fix."""
    data = read_toml_decimal(path)
    try:
        parsed = OverrideFile.model_validate(data)
    except ValidationError as exc:
        raise PricingError(describe_errors(exc, str(path), data)) from None
    check_unique_names(parsed.overrides, str(path))
    return parsed.overrides


def parse_pricing_config(pricing: dict[str, Any], where: str = "config [pricing]") -> PricingConfig:
    """Validate the ``[pricing]`` table; keys in errors are prefixed with ``pricing.``."""
    try:
        return PricingConfig.model_validate(pricing)
    except ValidationError as exc:
        message = describe_errors(exc, where, pricing)
        raise PricingError(message.replace("\n  ", "\n  pricing.")) from None


def resolve_path(value: str, base_dir: Path | None) -> Path:
    """A path from the config, relative to ``base_dir`` (the config file's folder) if given."""
    path = Path(value).expanduser()
    return path if path.is_absolute() or base_dir is None else base_dir / path
