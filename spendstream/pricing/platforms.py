"""Where a call was served: its platform and region, and the platform prices that follow.

A call's **placement** is a platform (``api``: the provider's own API, Gemini API for Google;
``azure``: Azure OpenAI; ``bedrock``; ``vertex``: Vertex AI) and a region or data zone (``eu``,
``us``, ``us-gov``, ``apac``, ``au``, ``jp``, ``global``, or an AWS/Azure region such as
``eu-west-1``; empty when nothing says it). It is read, in this order:

1. from the model id the app used, which names what was billed: ``azure/eu/gpt-4o`` (Azure data
   zone), ``vertex_ai/gemini-2.0-flash``, ``bedrock/us-gov-west-1/anthropic.…``, Bedrock
   cross-region inference profiles ``eu.anthropic.claude-…`` (``us.``, ``apac.``, ``au.``,
   ``jp.``, ``us-gov.``, ``global.``) and ARNs ``arn:aws:bedrock:eu-west-1:…``;
2. from the reported provider name (``azure``, ``vertex_ai``, ``bedrock``, ...);
3. from the event's optional ``platform`` and ``region`` fields (set by the SDK from the client
   where it knows them) for whatever the id does not say;
4. else the provider's home platform (``bedrock`` for Bedrock, ``api`` for the others).

The price is the model's platform row for the exact region, else its platform row for every
region (``*``), else the model's base price (Azure global standard, Bedrock in-region and
Vertex AI mostly list the provider's own rates).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from spendstream.pricing.catalog import (
    Catalog,
    ModelEntry,
    PlatformPrices,
    PlatformRow,
    PriceRow,
    Rates,
    Tier,
)
from spendstream.pricing.compiled import CompiledModel

API = "api"
HOME_PLATFORMS = {"bedrock": "bedrock"}  # catalog providers whose own API is a cloud platform
# Reported provider names (lowercased) that say the platform.
PROVIDER_PLATFORMS = {
    **dict.fromkeys(
        ("azure", "azure_openai", "azure-openai", "azure.ai.openai", "openai_azure"), "azure"
    ),
    **dict.fromkeys(
        (
            "vertex_ai",
            "vertexai",
            "vertex-ai",
            "gcp.vertex_ai",
            "google_vertex",
            "vertex_ai-language-models",
            "vertex_ai-anthropic_models",
            "vertex_ai-embedding-models",
        ),
        "vertex",
    ),
    **dict.fromkeys(
        ("bedrock", "aws", "aws.bedrock", "aws_bedrock", "amazon_bedrock", "bedrock_converse"),
        "bedrock",
    ),
    **dict.fromkeys(("gemini", "gcp.gemini", "google_genai", "google_ai"), API),
}
# First path segment of a model id that says the platform (LiteLLM-style ids).
PATH_PLATFORMS = {"azure": "azure", "vertex_ai": "vertex", "bedrock": "bedrock", "gemini": API}
BEDROCK_PROFILE = re.compile(r"^(us-gov|us|eu|apac|ap|au|jp|ca|global)\.")
AWS_REGION = re.compile(r"^[a-z]{2}(?:-gov)?-[a-z]+-\d$")
ARN_REGION = re.compile(r"^arn:aws[a-z\-]*:bedrock:([a-z0-9\-]+):")


@dataclass(frozen=True, slots=True)
class Placement:
    platform: str
    region: str = ""


DIRECT_API = Placement(API)


class Placed:
    """``platform`` and ``region`` of a rating's ``placement`` (a mixin of the rating types)."""

    __slots__ = ()
    placement: Placement

    @property
    def platform(self) -> str:
        return self.placement.platform

    @property
    def region(self) -> str:
        return self.placement.region


def placement_of(
    reported_provider: str,
    model: str,
    canonical: str | None,
    platform: str | None = None,
    region: str | None = None,
) -> Placement:
    """The placement of a call (module doc); names are compared lowercased."""
    name = model.strip().lower()
    segments = name.split("/")
    id_platform = PATH_PLATFORMS.get(segments[0]) if len(segments) > 1 else None
    if name.startswith("arn:aws"):
        id_platform = "bedrock"
    chosen = (
        id_platform
        or PROVIDER_PLATFORMS.get(reported_provider.strip().lower())
        or (platform or "").strip().lower()
        or HOME_PLATFORMS.get(canonical or "", API)
    )
    id_region = _region_in_id(chosen, segments, name)
    return Placement(chosen, id_region or (region or "").strip().lower())


def _region_in_id(platform: str, segments: Sequence[str], name: str) -> str:
    if platform == "azure" and len(segments) >= 3:  # azure/eu/gpt-4o: the data zone
        return segments[-2]
    if platform != "bedrock":
        return ""
    profile = BEDROCK_PROFILE.match(segments[-1].rsplit(":foundation-model", 1)[-1])
    arn = ARN_REGION.match(name)
    if "inference-profile/" in name:
        profile = BEDROCK_PROFILE.match(name.rsplit("inference-profile/", 1)[-1])
    if profile:
        return "apac" if profile.group(1) == "ap" else profile.group(1)
    if arn:
        return arn.group(1)
    regions = [segment for segment in segments[:-1] if AWS_REGION.match(segment)]
    return regions[-1] if regions else ""


@dataclass(frozen=True, slots=True)
class PlatformSchedule:
    """One model's effective-dated rows on one platform in some regions, as base-shaped
    :class:`PriceRow`s (markups applied). The first ``inherited`` rows are the model's base rows
    in force before the platform's first row: a call served there before the platform had a
    price of its own is priced at base (and its ref names the base row)."""

    platform: str
    regions: tuple[str, ...]
    source: str
    rows: tuple[PriceRow, ...]
    inherited: int = 0

    def label(self, region: str) -> str:
        """How refs name this schedule in ``region``: ``azure/eu``, or ``vertex`` for ``*``."""
        return self.platform if region == "*" else f"{self.platform}/{region}"


def platform_prices(catalog: Catalog, entry: ModelEntry) -> list[PlatformPrices]:
    """The model's own platform prices, then the rules that name it (own rows win: they come
    first for the same platform and region)."""
    rules = [
        rule
        for rule in catalog.platforms
        if rule.provider == entry.provider and (entry.model in rule.models or "*" in rule.models)
    ]
    return [*entry.platforms, *rules]


def schedules(catalog: Catalog, entry: ModelEntry) -> list[PlatformSchedule]:
    """Every platform schedule of ``entry`` with markups resolved against its base rows."""
    found: list[PlatformSchedule] = []
    for prices in platform_prices(catalog, entry):
        own = expand_rows(entry.prices, prices.prices)
        first = own[0].effective_from if own else None
        before = [row for row in entry.prices if first is None or row.effective_from < first]
        found.append(
            PlatformSchedule(
                prices.platform,
                tuple(prices.regions),
                prices.source,
                (*before, *own),
                len(before),
            )
        )
    return found


def expand_rows(base: Sequence[PriceRow], rows: Sequence[PlatformRow]) -> list[PriceRow]:
    """Platform ``rows`` as full price rows. A markup row applies to each base row in force
    during it, so a base price change starts a new platform row on the same day; before the
    first base row a markup prices nothing."""
    ends: list[datetime | None] = [row.effective_from for row in rows[1:]]
    ends.append(None)
    out: list[PriceRow] = []
    for row, end in zip(rows, ends, strict=True):
        if row.markup is None:
            out.append(row.own_rates())
            continue
        factor = 1 + row.markup
        for start, base_row in _base_rows_during(base, row.effective_from, end):
            out.append(_scaled(base_row, factor, start))
    return out


def _base_rows_during(
    base: Sequence[PriceRow], start: datetime, end: datetime | None
) -> Iterable[tuple[datetime, PriceRow]]:
    for index, row in enumerate(base):
        row_end = base[index + 1].effective_from if index + 1 < len(base) else None
        if row_end is not None and row_end <= start:
            continue
        if end is not None and row.effective_from >= end:
            break
        yield max(start, row.effective_from), row


RATE_NAMES = ("input", "output", "cache_read", "cache_write", "cache_write_1h", "reasoning")


def _scale(rates: Rates, factor: Decimal) -> dict[str, Decimal]:
    values: dict[str, Decimal | None] = {name: getattr(rates, name) for name in RATE_NAMES}
    return {name: value * factor for name, value in values.items() if value is not None}


def _scaled(row: PriceRow, factor: Decimal, start: datetime) -> PriceRow:
    tiers = [
        Tier.model_validate({"above_input_tokens": tier.above_input_tokens, **_scale(tier, factor)})
        for tier in row.tiers
    ]
    return PriceRow.model_validate({"effective_from": start, "tiers": tiers, **_scale(row, factor)})


class PlatformIndex:
    """Every model's platform rows, compiled once: the lookup behind each (cached) resolution."""

    def __init__(self, catalog: Catalog) -> None:
        # (provider, model, platform, region or "*") -> that placement's rows
        self._placed: dict[tuple[str, str, str, str], CompiledModel] = {}
        for entry in catalog.models:
            discount = catalog.batch_discount(entry)
            for schedule in schedules(catalog, entry):  # a model's own rows before rules
                for region in schedule.regions:
                    key = (entry.provider, entry.model, schedule.platform, region)
                    if key not in self._placed:
                        self._placed[key] = CompiledModel.build(
                            entry,
                            discount,
                            schedule.rows,
                            schedule.label(region),
                            schedule.inherited,
                        )

    def lookup(self, base: CompiledModel, placement: Placement) -> CompiledModel:
        """The rows for ``placement``: the exact region's, else the platform's (``*``), else
        the model's ``base`` rows."""
        entry = base.entry
        for region in (placement.region, "*"):
            found = self._placed.get((entry.provider, entry.model, placement.platform, region))
            if found is not None:
                return found
        return base
