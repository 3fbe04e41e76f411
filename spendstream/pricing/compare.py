"""Compare the catalog with a LiteLLM price map (``model_prices_and_context_window.json``).

LiteLLM's community-maintained map gives, per model key, rates in USD per *token* as JSON
floats: ``input_cost_per_token``, ``output_cost_per_token``, ``cache_read_input_token_cost``,
``cache_creation_input_token_cost`` and long-context ``*_above_200k_tokens`` variants, plus
``litellm_provider``. The file is parsed with ``parse_float=Decimal`` (``2.5e-06`` stays exactly
``0.0000025``) and every rate is compared, per million tokens, with the catalog row in force at
the given time. Keys that resolve to no catalog model, or whose provider the catalog does not
know, are skipped (they are counted in :class:`Comparison`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from spendstream.pricing.catalog import PriceRow, PricingError, Rates
from spendstream.pricing.known import KnownDifference, KnownDifferences
from spendstream.pricing.platforms import PROVIDER_PLATFORMS
from spendstream.pricing.rating import Pricer

PER_MILLION = Decimal(1_000_000)

# LiteLLM provider names the catalog's provider aliases do not cover.
LITELLM_PROVIDERS = {
    "text-completion-openai": "openai",
    "vertex_ai-language-models": "google",
    "vertex_ai-embedding-models": "google",
    "vertex_ai-anthropic_models": "anthropic",
    "bedrock_converse": "bedrock",
    "codestral": "mistral",
}

# (catalog field, LiteLLM key); a rate absent from either side is not compared.
FIELDS = (
    ("input", "input_cost_per_token"),
    ("output", "output_cost_per_token"),
    ("cache_read", "cache_read_input_token_cost"),
    ("cache_write", "cache_creation_input_token_cost"),
)


@dataclass(frozen=True, slots=True)
class RateDifference:
    """One rate that differs, both sides in USD per million tokens."""

    provider: str
    litellm_key: str
    catalog_model: str
    platform: str
    region: str
    price_label: str  # the platform rows compared (``azure/eu``), empty for base rows
    rate: str
    catalog: Decimal
    litellm: Decimal
    effective_from: datetime
    known: KnownDifference | None = None  # the known difference that explains it, if any


@dataclass
class Comparison:
    """Differences (explained or not), how many LiteLLM keys were compared, the keys the
    catalog does not know, and the known-difference patterns that explained nothing."""

    differences: list[RateDifference] = field(default_factory=list)
    compared: int = 0
    unknown: list[str] = field(default_factory=list)
    stale: list[tuple[KnownDifference, str]] = field(default_factory=list)

    @property
    def unexplained(self) -> list[RateDifference]:
        return [difference for difference in self.differences if difference.known is None]


def explain(comparison: Comparison, known: KnownDifferences) -> Comparison:
    """``comparison`` with each difference matched to the first known difference covering it,
    and every pattern that covers none listed as stale."""
    used: set[tuple[int, str]] = set()
    explained: list[RateDifference] = []
    for difference in comparison.differences:
        match = None
        for index, entry in enumerate(known.differences):
            pattern = entry.covers(difference.litellm_key, difference.rate)
            if pattern is not None:
                used.add((index, pattern))
                match = entry
                break
        explained.append(replace(difference, known=match))
    stale = [
        (entry, pattern)
        for index, entry in enumerate(known.differences)
        for pattern in entry.keys
        if (index, pattern) not in used
    ]
    return replace(comparison, differences=explained, stale=stale)


def load_litellm_map(path: Path) -> dict[str, dict[str, Any]]:
    """The JSON object of model entries; rates as exact Decimals. Raises PricingError."""
    try:
        data = json.loads(path.read_text(), parse_float=Decimal)
    except FileNotFoundError:
        raise PricingError(f"{path}: file not found; check the path") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PricingError(f"{path}: not JSON ({exc}); pass LiteLLM's price map") from None
    if not isinstance(data, dict):
        raise PricingError(f"{path}: expected a JSON object of model entries (LiteLLM format)")
    return {key: value for key, value in data.items() if isinstance(value, dict)}


def _per_million(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value)) * PER_MILLION
    except ArithmeticError:
        return None


def _catalog_rate(rates: Rates, name: str) -> Decimal:
    value: Decimal | None = getattr(rates, name)
    return rates.input if value is None else value  # absent cache rates bill at input


def _pairs(row: PriceRow) -> list[tuple[str, str, Rates]]:
    """(rate label, LiteLLM key suffix, rates): the base row and each long-context tier."""
    pairs: list[tuple[str, str, Rates]] = [("", "", row)]
    for tier in row.tiers:
        size = f"{tier.above_input_tokens // 1000}k"
        pairs.append((f" >{size}", f"_above_{size}_tokens", tier))
    return pairs


def compare_with_litellm(
    pricer: Pricer,
    entries: dict[str, dict[str, Any]],
    at: datetime | None = None,
    known: KnownDifferences | None = None,
) -> Comparison:
    """Every rate of every LiteLLM entry that resolves to a catalog model and differs from the
    catalog row in force at ``at`` (default: now) for the entry's placement (a key such as
    ``azure/eu/gpt-4o`` is compared with the model's Azure EU rows); with ``known``, each
    difference is matched to the known difference explaining it (:func:`explain`)."""
    when = at or datetime.now(UTC)
    result = Comparison()
    for key, entry in sorted(entries.items()):
        reported = str(entry.get("litellm_provider", ""))
        provider = LITELLM_PROVIDERS.get(reported, reported)
        platform = PROVIDER_PLATFORMS.get(reported)
        compiled, placement = (
            pricer.find_placed(provider, key, platform) if provider else (None, None)
        )
        index = compiled.index_at(when) if compiled else -1
        if compiled is None or placement is None or index < 0:
            result.unknown.append(key)
            continue
        result.compared += 1
        row = compiled.rows[index]
        for label, suffix, rates in _pairs(row):
            for name, litellm_name in FIELDS:
                theirs = _per_million(entry.get(litellm_name + suffix))
                if theirs is None:
                    continue
                ours = _catalog_rate(rates, name)
                if ours != theirs:
                    result.differences.append(
                        RateDifference(
                            provider=compiled.entry.provider,
                            litellm_key=key,
                            catalog_model=compiled.entry.model,
                            platform=placement.platform,
                            region=placement.region,
                            price_label=compiled.label,
                            rate=name + label,
                            catalog=ours,
                            litellm=theirs,
                            effective_from=row.effective_from,
                        )
                    )
    return explain(result, known) if known is not None else result
