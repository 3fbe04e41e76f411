"""Prices where the call is served: placement from the model id and the event, one
hand-computed cost per platform and region rule, markups across base price changes, and
unknown ids left unpriced."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest

from spendstream.events import UsageEvent, derived_event_id, parse_event
from spendstream.pricing import Pricer, default_pricer
from spendstream.pricing.catalog import Catalog, load_catalog
from spendstream.pricing.platforms import Placement, placement_of

D = Decimal
M = Decimal(1_000_000)
WHEN = datetime(2026, 11, 30, 12, tzinfo=UTC)
ARN_PROFILE = (
    "arn:aws:bedrock:eu-central-1:123456789012:inference-profile/"
    "eu.anthropic.claude-haiku-4-5-20251001-v1:0"
)
ARN_MODEL = "arn:aws:bedrock:eu-central-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0"


def rate(**fields: Any) -> Any:
    return default_pricer().rate(UsageEvent(event_time=WHEN, **fields))


def usd(input_tokens: int, input_rate: str, output_tokens: int, output_rate: str) -> Decimal:
    """Hand-computed cost: tokens x USD-per-million rate."""
    return (input_tokens * D(input_rate) + output_tokens * D(output_rate)) / M


@pytest.mark.parametrize(
    ("provider", "model", "platform", "region", "expected"),
    [
        ("openai", "gpt-4o", None, None, Placement("api")),
        ("azure", "gpt-4o", None, None, Placement("azure")),
        ("openai", "azure/eu/gpt-4o", None, None, Placement("azure", "eu")),
        ("azure", "azure/us-gov/gpt-5.1", None, None, Placement("azure", "us-gov")),
        ("openai", "gpt-4o", "azure", "EU", Placement("azure", "eu")),
        ("bedrock", "anthropic.claude-haiku-4-5-20251001-v1:0", None, None, Placement("bedrock")),
        (
            "bedrock",
            "eu.anthropic.claude-haiku-4-5-20251001-v1:0",
            None,
            None,
            Placement("bedrock", "eu"),
        ),
        (
            "bedrock",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            None,
            None,
            Placement("bedrock", "global"),
        ),
        ("bedrock", "apac.amazon.nova-lite-v1:0", None, None, Placement("bedrock", "apac")),
        (
            "bedrock",
            "bedrock/us-gov-west-1/anthropic.claude-3-haiku-20240307-v1:0",
            None,
            None,
            Placement("bedrock", "us-gov-west-1"),
        ),
        # the profile in the id says what was billed, whatever region the client was in
        (
            "bedrock",
            "eu.anthropic.claude-haiku-4-5-20251001-v1:0",
            None,
            "us-east-1",
            Placement("bedrock", "eu"),
        ),
        (
            "bedrock",
            "anthropic.claude-haiku-4-5-20251001-v1:0",
            None,
            "eu-west-1",
            Placement("bedrock", "eu-west-1"),
        ),
        ("aws", ARN_PROFILE, None, None, Placement("bedrock", "eu")),
        ("aws", ARN_MODEL, None, None, Placement("bedrock", "eu-central-1")),
        ("google", "vertex_ai/gemini-2.0-flash", None, None, Placement("vertex")),
        (
            "vertex_ai",
            "gemini-2.0-flash",
            None,
            "europe-west4",
            Placement("vertex", "europe-west4"),
        ),
        ("gemini", "gemini-2.0-flash", None, None, Placement("api")),
        ("anthropic", "claude-3-5-haiku", "vertex", "us-east5", Placement("vertex", "us-east5")),
    ],
)
def test_placement_comes_from_the_id_then_the_provider_then_the_event(
    provider: str, model: str, platform: str | None, region: str | None, expected: Placement
) -> None:
    canonical = default_pricer().canonical_provider(provider)
    assert placement_of(provider, model, canonical, platform, region) == expected


@pytest.mark.parametrize(
    ("fields", "ref", "cost"),
    [
        # Azure OpenAI data zones: 10 % above OpenAI's $2.50 / $10
        (
            {"provider": "azure", "model": "azure/eu/gpt-4o"},
            "openai/gpt-4o[azure/eu]@2024-11-01",
            usd(10**6, "2.75", 10**5, "11"),
        ),
        (
            {"provider": "openai", "model": "azure/us/gpt-4o-mini"},
            "openai/gpt-4o-mini[azure/us]@2024-11-01",
            usd(10**6, "0.165", 10**5, "0.66"),
        ),
        # Azure global standard bills OpenAI's own rates ...
        (
            {"provider": "azure", "model": "gpt-4o"},
            "openai/gpt-4o@2024-10-02",
            usd(10**6, "2.50", 10**5, "10"),
        ),
        # ... except embeddings (+10 % everywhere) and GPT-4 Turbo
        (
            {"provider": "azure", "model": "text-embedding-3-small", "output_tokens": 0},
            "openai/text-embedding-3-small[azure]@2024-01-25",
            usd(10**6, "0.022", 0, "0"),
        ),
        (
            {"provider": "azure", "model": "gpt-4-turbo-2024-04-09"},
            "openai/gpt-4-turbo[azure]@2024-04-09",
            usd(10**6, "11", 10**5, "33"),
        ),
        # Azure Government: 37.5 % above (gpt-5.1 $1.25 / $10 -> $1.71875 / $13.75)
        (
            {"provider": "azure", "model": "azure/us-gov/gpt-5.1"},
            "openai/gpt-5.1[azure/us-gov]@2025-11-13",
            usd(10**6, "1.71875", 10**5, "13.75"),
        ),
        (
            {
                "provider": "azure",
                "model": "text-embedding-3-large",
                "region": "us-gov",
                "output_tokens": 0,
            },
            "openai/text-embedding-3-large[azure/us-gov]@2024-01-25",
            usd(10**6, "0.163", 0, "0"),
        ),
        # Bedrock geo profiles: Claude Haiku 4.5 $1 / $5 -> $1.10 / $5.50; the global profile
        # and in-region calls bill the base rate
        (
            {"provider": "bedrock", "model": "jp.anthropic.claude-haiku-4-5-20251001-v1:0"},
            "bedrock/claude-haiku-4-5[bedrock/jp]@2025-10-15",
            usd(10**6, "1.10", 10**5, "5.50"),
        ),
        (
            {"provider": "bedrock", "model": "global.anthropic.claude-haiku-4-5-20251001-v1:0"},
            "bedrock/claude-haiku-4-5@2025-10-15",
            usd(10**6, "1", 10**5, "5"),
        ),
        (
            {
                "provider": "bedrock",
                "model": "anthropic.claude-haiku-4-5-20251001-v1:0",
                "region": "eu-west-1",
            },
            "bedrock/claude-haiku-4-5@2025-10-15",
            usd(10**6, "1", 10**5, "5"),
        ),
        # Bedrock GovCloud: 20 % above US East (Claude 3 Haiku $0.25 / $1.25)
        (
            {
                "provider": "bedrock",
                "model": "anthropic.claude-3-haiku-20240307-v1:0",
                "region": "us-gov-west-1",
            },
            "bedrock/claude-3-haiku[bedrock/us-gov-west-1]@2024-03-13",
            usd(10**6, "0.30", 10**5, "1.50"),
        ),
        # Nova: APAC +5 %, EU at its own rates
        (
            {"provider": "bedrock", "model": "apac.amazon.nova-pro-v1:0"},
            "bedrock/nova-pro[bedrock/apac]@2024-12-03",
            usd(10**6, "0.84", 10**5, "3.36"),
        ),
        (
            {"provider": "bedrock", "model": "eu.amazon.nova-lite-v1:0"},
            "bedrock/nova-lite[bedrock/eu]@2024-12-03",
            usd(10**6, "0.078", 10**5, "0.312"),
        ),
        # Vertex AI against the Gemini API
        (
            {"provider": "vertex_ai", "model": "gemini-2.0-flash-001"},
            "google/gemini-2.0-flash[vertex]@2025-02-05",
            usd(10**6, "0.15", 10**5, "0.60"),
        ),
        (
            {"provider": "gemini", "model": "gemini-2.0-flash-001"},
            "google/gemini-2.0-flash@2025-02-05",
            usd(10**6, "0.10", 10**5, "0.40"),
        ),
        (
            {"provider": "anthropic", "model": "claude-3-5-haiku@20241022", "platform": "vertex"},
            "anthropic/claude-3-5-haiku[vertex]@2024-11-04",
            usd(10**6, "1", 10**5, "5"),
        ),
        # a dated snapshot priced apart from its alias
        (
            {"provider": "openai", "model": "gpt-3.5-turbo-1106"},
            "openai/gpt-3.5-turbo-1106@2023-11-06",
            usd(10**6, "1", 10**5, "2"),
        ),
        (
            {"provider": "openai", "model": "gpt-3.5-turbo-0125"},
            "openai/gpt-3.5-turbo@2024-01-25",
            usd(10**6, "0.50", 10**5, "1.50"),
        ),
    ],
)
def test_hand_computed_cost_of_each_platform_rule(
    fields: dict[str, Any], ref: str, cost: Decimal
) -> None:
    rating = rate(**{"input_tokens": 10**6, "output_tokens": 10**5, **fields})
    assert (rating.priced, rating.price_ref) == (True, ref)
    assert rating.cost_total == cost


def test_bedrock_eu_and_azure_eu_are_priced_ten_percent_above_base() -> None:
    tokens = {"input_tokens": 123_457, "output_tokens": 9_871, "cache_read_tokens": 50_000}
    pairs = [
        (
            ("bedrock", "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            ("bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ),
        (("azure", "azure/eu/gpt-4.1"), ("openai", "gpt-4.1")),
    ]
    for (provider, model), (base_provider, base_model) in pairs:
        placed = rate(provider=provider, model=model, **tokens)
        base = rate(provider=base_provider, model=base_model, **tokens)
        assert placed.region == "eu" and base.region in ("global", "")
        assert placed.cost_total == base.cost_total * D("1.1") > 0
        assert placed.cost_cache_read == base.cost_cache_read * D("1.1") > 0


def test_long_context_tiers_carry_the_markup() -> None:
    rating = rate(
        provider="bedrock",
        model="eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
        input_tokens=300_000,
        output_tokens=1_000,
    )
    assert rating.price_ref == "bedrock/claude-sonnet-4-5[bedrock/eu]@2025-09-29>200000"
    assert rating.cost_total == usd(300_000, "6.60", 1_000, "24.75")  # $6 / $22.50 + 10 %


def test_the_rating_records_where_it_priced_the_call() -> None:
    rating = rate(
        provider="bedrock", model="anthropic.claude-haiku-4-5", region="EU", input_tokens=10**6
    )
    assert (rating.platform, rating.region) == ("bedrock", "eu")
    assert rating.price_ref == "bedrock/claude-haiku-4-5[bedrock/eu]@2025-10-15"
    assert rating.cost_total == usd(10**6, "1.10", 0, "0")
    direct = rate(provider="openai", model="gpt-4o", input_tokens=10)
    assert (direct.platform, direct.region) == ("api", "")


@pytest.mark.parametrize(
    ("provider", "model"),
    [("azure", "azure/eu/no-such-model"), ("bedrock", "eu.anthropic.claude-9"), ("vertex_ai", "x")],
)
def test_an_id_the_catalog_does_not_know_stays_unpriced(provider: str, model: str) -> None:
    rating = rate(provider=provider, model=model, input_tokens=1_000, output_tokens=10)
    assert not rating.priced and rating.price_ref == ""
    assert "unknown model" in rating.unpriced_reason
    assert rating.platform  # where it was served is still recorded


def test_platform_and_region_are_optional_and_keep_v1_ids() -> None:
    v1 = {"event_time": "2026-11-28T10:00:00Z", "provider": "openai", "model": "gpt-4o"}
    event = parse_event(str(v1).replace("'", '"').encode())
    assert (event.platform, event.region) == (None, None)
    placed = event.model_copy(update={"platform": "azure"})
    assert derived_event_id(placed) != derived_event_id(event)
    with pytest.raises(ValueError, match="region"):
        UsageEvent(provider="openai", model="gpt-4o", region="eu west")


def _catalog_with(extra: str) -> Catalog:
    """The shipped catalog plus ``extra`` TOML (validated as a whole)."""
    text = resources.files("spendstream.pricing").joinpath("catalog.toml").read_text()
    return Catalog.model_validate(tomllib.loads(text + extra, parse_float=Decimal))


def test_a_markup_follows_base_price_changes_and_its_own_dates() -> None:
    catalog = _catalog_with(
        """
[[platforms]]
provider = "mistral"
platform = "azure"
regions = ["eu"]
models = ["mistral-large"]
source = "https://example.com/prices"
[[platforms.prices]]
effective_from = 2025-01-01
markup = 0.20
[[platforms.prices]]
effective_from = 2026-01-01
input = 1.00
output = 3.00
"""
    )
    pricer = Pricer(catalog)

    def at(day: str) -> Any:
        moment = datetime.fromisoformat(day).replace(tzinfo=UTC)
        event = UsageEvent(
            provider="mistral",
            model="azure/eu/mistral-large-latest",
            event_time=moment,
            input_tokens=10**6,
            output_tokens=10**6,
        )
        return pricer.rate(event)

    # mistral-large: $2 / $6 from 2024-11-18, $0.50 / $1.50 from 2025-12-02
    assert at("2024-12-01").price_ref == "mistral/mistral-large@2024-11-18"  # before the markup
    assert at("2025-06-01").cost_total == D("2.40") + D("7.20")
    assert at("2025-12-05").price_ref == "mistral/mistral-large[azure/eu]@2025-12-02"
    assert at("2025-12-05").cost_total == D("0.60") + D("1.80")
    assert at("2026-02-01").cost_total == D(1) + D(3)


@pytest.mark.parametrize(
    ("models", "row", "message"),
    [
        ('["gpt-4o"]', "markup = 0.1\ninput = 1\noutput = 2", "either markup"),
        ('["gpt-4o"]', "input = 1", "input and output"),
        ('["gpt-9"]', "markup = 0.1", "not catalog models"),
    ],
)
def test_invalid_platform_rows_are_refused_with_the_fix(
    models: str, row: str, message: str
) -> None:
    rule = f"""
[[platforms]]
provider = "openai"
platform = "azure"
source = "https://x.example"
models = {models}
[[platforms.prices]]
effective_from = 2025-01-01
{row}
"""
    with pytest.raises(ValueError, match=message):
        _catalog_with(rule)


def test_the_shipped_rules_name_catalog_models() -> None:
    rules = load_catalog().platforms
    assert {(rule.provider, rule.platform) for rule in rules} >= {
        ("openai", "azure"),
        ("bedrock", "bedrock"),
        ("google", "vertex"),
        ("anthropic", "vertex"),
    }
