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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from spendstream.pricing.catalog import PriceRow, PricingError, Rates
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
    rate: str
    catalog: Decimal
    litellm: Decimal
    effective_from: datetime


@dataclass
class Comparison:
    differences: list[RateDifference] = field(default_factory=list)
    compared: int = 0
    unknown: list[str] = field(default_factory=list)


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
    pricer: Pricer, entries: dict[str, dict[str, Any]], at: datetime | None = None
) -> Comparison:
    """Every rate of every LiteLLM entry that resolves to a catalog model and differs from the
    catalog row in force at ``at`` (default: now)."""
    when = at or datetime.now(UTC)
    result = Comparison()
    for key, entry in sorted(entries.items()):
        reported = str(entry.get("litellm_provider", ""))
        provider = LITELLM_PROVIDERS.get(reported, reported)
        compiled = pricer.find_model(provider, key) if provider else None
        index = compiled.index_at(when) if compiled else -1
        if compiled is None or index < 0:
            result.unknown.append(key)
            continue
        result.compared += 1
        row = compiled.entry.prices[index]
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
                            rate=name + label,
                            catalog=ours,
                            litellm=theirs,
                            effective_from=row.effective_from,
                        )
                    )
    return result
