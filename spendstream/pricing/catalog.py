"""The price catalog file: schema (pydantic), loading, and precise error messages.

A catalog is TOML (see the shipped ``catalog.toml`` for the format and its comments). Floats are
read as exact :class:`~decimal.Decimal` values, never binary floats.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime, time
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from spendstream.config import ConfigError
from spendstream.events import UnitName

# USD per million tokens; the upper bound catches a price typed per token or per thousand wrongly.
Price = Annotated[Decimal, Field(ge=0, le=100_000, allow_inf_nan=False)]
Fraction = Annotated[Decimal, Field(ge=0, lt=1, allow_inf_nan=False)]
NAME_PATTERN = r"^[a-z0-9][a-z0-9._:@\-]*$"
ModelName = Annotated[str, Field(min_length=1, max_length=200, pattern=NAME_PATTERN)]
ProviderName = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)]

# USD per ``per`` units of a usage unit (an image, 1,000 search calls, a GB-day, ...).
UnitPriceValue = Annotated[Decimal, Field(ge=0, le=1_000_000, allow_inf_nan=False)]
UnitPer = Annotated[Decimal, Field(gt=0, le=10**9, allow_inf_nan=False)]

SHIPPED_CATALOG = "catalog.toml"
_Row = TypeVar("_Row", bound=BaseModel)

FIX_HINTS: dict[str, str] = {
    "extra_forbidden": "unknown key; remove it or check its spelling",
    "missing": "required key is missing; add it",
    "decimal_parsing": "write a number, e.g. 2.50 (USD per million tokens)",
    "decimal_type": "write a number, e.g. 2.50 (USD per million tokens)",
    "less_than_equal": "too large; prices are USD per *million* tokens",
    "greater_than_equal": "must not be negative",
    "less_than": "must be a fraction below 1, e.g. 0.5 for 50 % off",
    "string_pattern_mismatch": "use lowercase letters, digits and . _ - only",
    "datetime_from_date_parsing": "write a TOML date (2025-01-31) or datetime with offset",
}


class PricingError(ConfigError):
    """Invalid catalog or override file; the message names the file, the key and the fix."""


class Rates(BaseModel):
    """One set of USD-per-million-token rates. Absent cache rates mean "billed at ``input``"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Price
    output: Price
    cache_read: Price | None = None
    cache_write: Price | None = None
    cache_write_1h: Price | None = Field(
        default=None,
        description=(
            "Anthropic 1-hour cache write, applied to an event's cache_write_1h_tokens; "
            "absent = billed at cache_write"
        ),
    )
    reasoning: Price | None = Field(
        default=None, description="set only where reasoning tokens have their own rate"
    )


class Tier(Rates):
    """Long-context rates, used for the whole event when ``input_tokens > above_input_tokens``."""

    above_input_tokens: Annotated[int, Field(gt=0)]


class PriceRow(Rates):
    """Rates in force from ``effective_from`` (a date means 00:00 UTC) until the next row."""

    effective_from: datetime
    tiers: list[Tier] = Field(default_factory=list)

    @field_validator("effective_from", mode="before")
    @classmethod
    def _date_to_utc(cls, value: Any) -> Any:
        return to_utc_datetime(value)

    @field_validator("tiers")
    @classmethod
    def _sorted_tiers(cls, tiers: list[Tier]) -> list[Tier]:
        return sorted_unique(tiers, "above_input_tokens", "give each tier its own threshold")


# Where a call is served: a platform (``api`` is the provider's own API) and a region or data
# zone (``eu``, ``us``, ``us-gov``, ``global``, ``eu-west-1``); ``*``: every region without a row.
PlatformName = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_\-]*$")]
RegionName = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^\*$|^[a-z0-9][a-z0-9.\-]*$")
]
# A platform price relative to the base row in force: 0.10 is 10 % above it.
Markup = Annotated[Decimal, Field(gt=-1, le=10, allow_inf_nan=False)]


class PlatformRow(BaseModel):
    """A platform price from ``effective_from``: either its own rates (``input``, ``output``, ...,
    ``tiers``) or a ``markup`` on every rate (tiers included) of the base row in force."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    effective_from: datetime
    markup: Markup | None = None
    input: Price | None = None
    output: Price | None = None
    cache_read: Price | None = None
    cache_write: Price | None = None
    cache_write_1h: Price | None = None
    reasoning: Price | None = None
    tiers: list[Tier] = Field(default_factory=list)

    @field_validator("effective_from", mode="before")
    @classmethod
    def _date_to_utc(cls, value: Any) -> Any:
        return to_utc_datetime(value)

    @model_validator(mode="after")
    def _one_kind(self) -> PlatformRow:
        own = self.input is not None or self.output is not None
        if (self.markup is None) == (not own):
            raise ValueError("give either markup (e.g. 0.10 for 10 % above base) or input+output")
        if own and (self.input is None or self.output is None):
            raise ValueError("a platform row with its own rates needs input and output")
        if self.markup is not None and (self.tiers or self.cache_read is not None):
            raise ValueError("a markup row scales the base row; it takes no rates of its own")
        return self

    def own_rates(self) -> PriceRow:
        """This row's own rates as a :class:`PriceRow` (not for markup rows)."""
        return PriceRow.model_validate(self.model_dump(exclude={"markup"}, exclude_none=True))


class PlatformPrices(BaseModel):
    """One model's prices on one platform, in some regions (``[[models.platforms]]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    platform: PlatformName
    regions: Annotated[list[RegionName], Field(min_length=1)] = Field(default_factory=lambda: ["*"])
    source: Annotated[str, Field(pattern=r"^https://\S+$")]
    note: str = ""
    prices: Annotated[list[PlatformRow], Field(min_length=1)]

    @field_validator("prices")
    @classmethod
    def _sorted_rows(cls, prices: list[PlatformRow]) -> list[PlatformRow]:
        return sorted_unique(prices, "effective_from", "merge the rows or change a date")


class PlatformRule(PlatformPrices):
    """Platform prices of several models of one provider at once (``[[platforms]]``), e.g.
    Azure data zones at 10 % above base (``models = ["*"]``: every model of the provider). For
    one model, platform and region the first match wins: the model's own
    ``[[models.platforms]]``, then the rules in file order; an exact region beats ``*``."""

    provider: ProviderName
    models: Annotated[
        list[Annotated[str, Field(pattern=r"^\*$|" + NAME_PATTERN[1:])]], Field(min_length=1)
    ]


class ModelEntry(BaseModel):
    """One model of one provider with its effective-dated prices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: ProviderName
    model: ModelName
    kind: Literal["chat", "embedding"] = "chat"
    source: Annotated[str, Field(pattern=r"^https://\S+$")]
    aliases: list[ModelName] = Field(default_factory=list)
    batch_discount: Fraction | None = None
    prices: Annotated[list[PriceRow], Field(min_length=1)]
    platforms: list[PlatformPrices] = Field(default_factory=list)

    @field_validator("prices")
    @classmethod
    def _sorted_rows(cls, prices: list[PriceRow]) -> list[PriceRow]:
        return sorted_unique(prices, "effective_from", "merge the rows or change a date")

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.model}"


class UnitRate(BaseModel):
    """USD ``price`` per ``per`` units: ``{ price = 10.00, per = 1000 }`` is $10 per 1,000 calls.

    The cost of ``q`` units is ``q x price / per``, quantized once to 1e-18 USD."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    price: UnitPriceValue
    per: UnitPer = Decimal(1)


def flatten_unit_names(value: Any) -> Any:
    """Unit rates keyed by full unit name. TOML reads an unquoted dotted key
    (``images.1024x1024.hd = { price = 0.08 }``) as nested tables; they are joined back into
    ``images.1024x1024.hd`` (a table with a ``price`` key is a rate)."""
    if not isinstance(value, dict):
        return value
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict) and "price" not in item and item:
            for inner, rate in flatten_unit_names(item).items():
                flat[f"{key}.{inner}"] = rate
        else:
            flat[str(key)] = item
    return flat


class UnitPriceRow(BaseModel):
    """Unit rates in force from ``effective_from`` until the next row (units absent from the row
    in force have no price from this entry, as for tokens)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    effective_from: datetime
    rates: Annotated[dict[UnitName, UnitRate], Field(min_length=1)]

    @field_validator("effective_from", mode="before")
    @classmethod
    def _date_to_utc(cls, value: Any) -> Any:
        return to_utc_datetime(value)

    @field_validator("rates", mode="before")
    @classmethod
    def _flat_names(cls, value: Any) -> Any:
        return flatten_unit_names(value)


class UnitEntry(BaseModel):
    """Unit prices of some models of one provider (``"*"``: every model of the provider, used
    for units a model's own entry does not price)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: ProviderName
    models: Annotated[
        list[Annotated[str, Field(pattern=r"^\*$|" + NAME_PATTERN[1:])]], Field(min_length=1)
    ]
    source: Annotated[str, Field(pattern=r"^https://\S+$")]
    prices: Annotated[list[UnitPriceRow], Field(min_length=1)]

    @field_validator("prices")
    @classmethod
    def _sorted_rows(cls, prices: list[UnitPriceRow]) -> list[UnitPriceRow]:
        return sorted_unique(prices, "effective_from", "merge the rows or change a date")


class ProviderInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    aliases: list[ProviderName] = Field(default_factory=list)
    batch_discount: Fraction = Decimal(0)


class Catalog(BaseModel):
    """A whole catalog file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1]
    currency: Literal["USD"]
    providers: dict[ProviderName, ProviderInfo]
    models: list[ModelEntry]
    units: list[UnitEntry] = Field(default_factory=list)
    platforms: list[PlatformRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Catalog:
        known = {(entry.provider, entry.model) for entry in self.models}
        for rule in self.platforms:
            missing = [m for m in rule.models if m != "*" and (rule.provider, m) not in known]
            if missing:
                raise ValueError(
                    f"platform rule {rule.provider}/{rule.platform}: models {missing} are not "
                    "catalog models (use the catalog name, not an alias)"
                )
        priced: set[tuple[str, str]] = set()
        for unit_entry in self.units:
            provider = unit_entry.provider
            if provider not in self.providers:
                raise ValueError(
                    f"units of {provider}: provider has no [providers.{provider}] table; add one"
                )
            for model in unit_entry.models:
                if (provider, model) in priced:
                    raise ValueError(
                        f"units of {provider}/{model} appear in two [[units]] entries; merge them"
                    )
                priced.add((provider, model))
        aliases: dict[str, str] = {}
        for name, info in self.providers.items():
            for alias in info.aliases:
                if alias in self.providers or aliases.setdefault(alias, name) != name:
                    raise ValueError(f"provider alias {alias!r} is used twice; keep one")
        names: dict[tuple[str, str], str] = {}
        for entry in self.models:
            if entry.provider not in self.providers:
                raise ValueError(
                    f"model {entry.key}: provider {entry.provider!r} has no "
                    f"[providers.{entry.provider}] table; add one"
                )
            for name in (entry.model, *entry.aliases):
                seen = names.setdefault((entry.provider, name), entry.model)
                if seen != entry.model:
                    raise ValueError(
                        f"model name {entry.provider}/{name} is claimed by {seen!r} and "
                        f"{entry.model!r}; keep it on one entry"
                    )
        return self

    def batch_discount(self, entry: ModelEntry) -> Decimal:
        """The fraction off for batch events: the entry's own, else its provider's default."""
        if entry.batch_discount is not None:
            return entry.batch_discount
        return self.providers[entry.provider].batch_discount


def sorted_unique(items: list[_Row], field: str, fix: str) -> list[_Row]:
    """``items`` sorted by ``field``; two items with the same value are an error."""
    values = [getattr(item, field) for item in items]
    if len(set(values)) != len(values):
        raise ValueError(f"two entries share {field}; {fix}")
    return sorted(items, key=lambda item: getattr(item, field))


def to_utc_datetime(value: Any) -> Any:
    """TOML dates become 00:00 UTC; naive datetimes are taken as UTC; others pass through."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    return value


def read_toml_decimal(path: Path) -> dict[str, Any]:
    """Parse TOML with floats as Decimal; I/O and syntax errors become :class:`PricingError`."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle, parse_float=Decimal)
    except FileNotFoundError:
        raise PricingError(f"{path}: file not found; check the path") from None
    except tomllib.TOMLDecodeError as exc:
        raise PricingError(f"{path}: invalid TOML: {exc}; fix the syntax there") from None


def describe_errors(exc: ValidationError, where: str, data: Any = None) -> str:
    """One line per problem: ``file: key = value: what is wrong; how to fix it``."""
    lines = [f"{where}: invalid"]
    for error in exc.errors(include_url=False):
        key = _key_path(error["loc"], data)
        value = error.get("input")
        if isinstance(value, dict | list) or error["type"] == "missing":
            shown = ""
        else:  # Decimals print as typed in the file, other values quoted as Python shows them
            shown = f" = {value}" if isinstance(value, Decimal) else f" = {value!r}"
        message = str(error["msg"]).removeprefix("Value error, ")
        hint = FIX_HINTS.get(error["type"], "")
        lines.append(f"  {key}{shown}: {message}" + (f" ({hint})" if hint else ""))
    return "\n".join(lines)


def _key_path(loc: tuple[int | str, ...], data: Any) -> str:
    """``models[3](openai/gpt-4o).prices[0].input``: the key, naming the model it is inside."""
    out = ""
    node = data
    for item in loc:
        if isinstance(item, int):
            out += f"[{item}]"
            node = node[item] if isinstance(node, list) and 0 <= item < len(node) else None
            if isinstance(node, dict) and "model" in node:
                out += f"({node.get('provider', '?')}/{node['model']})"
        else:
            out += f".{item}" if out else str(item)
            node = node.get(item) if isinstance(node, dict) else None
    return out or "(top level)"


def load_toml_file(path: Path | None, schema: type[_Row], shipped_name: str) -> _Row:
    """Load and validate a TOML file of this package against ``schema`` (``path`` None: the
    shipped ``shipped_name``); errors are :class:`PricingError` naming the key and the fix."""
    if path is None:
        shipped = resources.files(__package__).joinpath(shipped_name)
        with resources.as_file(shipped) as shipped_path:
            return load_toml_file(shipped_path, schema, shipped_name)
    data = read_toml_decimal(path)
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise PricingError(describe_errors(exc, str(path), data)) from None


def load_catalog(path: Path | None = None) -> Catalog:
    """Load and validate a catalog file (default: the shipped one)."""
    return load_toml_file(path, Catalog, SHIPPED_CATALOG)
