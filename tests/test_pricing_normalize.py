"""Model/provider name normalisation: reported names -> catalog entries, never guessed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from spendstream.events import UsageEvent
from spendstream.pricing import default_pricer
from spendstream.pricing.normalize import model_candidates

RESOLVES: list[tuple[str, str, str]] = [
    # dated snapshots
    ("openai", "gpt-4o-2024-08-06", "openai/gpt-4o"),
    ("openai", "gpt-4o-2024-11-20", "openai/gpt-4o"),
    ("openai", "gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"),
    ("openai", "gpt-4.1-2025-04-14", "openai/gpt-4.1"),
    ("openai", "o3-2025-04-16", "openai/o3"),
    ("openai", "gpt-5-2025-08-07", "openai/gpt-5"),
    ("openai", "gpt-4-0613", "openai/gpt-4"),
    ("openai", "gpt-3.5-turbo-0125", "openai/gpt-3.5-turbo"),
    ("openai", "gpt-4-1106-preview", "openai/gpt-4-turbo-preview"),
    ("anthropic", "claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4-5"),
    ("anthropic", "claude-3-5-sonnet-20241022", "anthropic/claude-3-5-sonnet"),
    ("anthropic", "claude-3-haiku-20240307", "anthropic/claude-3-haiku"),
    ("anthropic", "claude-opus-4-1-20250805", "anthropic/claude-opus-4-1"),
    # a dated snapshot with its own entry keeps its price after `-latest` moved on
    ("mistral", "mistral-large-2411", "mistral/mistral-large-2411"),
    ("mistral", "mistral-large-2512", "mistral/mistral-large-2512"),
    ("openai", "gpt-5.1-2025-11-13", "openai/gpt-5.1"),
    ("openai", "gpt-5.2-chat-latest", "openai/gpt-5.2"),
    ("anthropic", "claude-opus-4-6", "anthropic/claude-opus-4-6"),
    ("mistral", "codestral-2501", "mistral/codestral"),
    ("google", "gemini-2.0-flash-001", "google/gemini-2.0-flash"),
    ("google", "gemini-1.5-pro-002", "google/gemini-1.5-pro"),
    # a snapshot with its own price is matched exactly before any rewrite
    ("openai", "gpt-4o-2024-05-13", "openai/gpt-4o-2024-05-13"),
    ("openai", "gpt-3.5-turbo-1106", "openai/gpt-3.5-turbo-1106"),
    # aliases
    ("anthropic", "claude-3-5-sonnet-latest", "anthropic/claude-3-5-sonnet"),
    ("anthropic", "claude-3-7-sonnet-latest", "anthropic/claude-3-7-sonnet"),
    ("anthropic", "claude-sonnet-4-0", "anthropic/claude-sonnet-4"),
    ("anthropic", "claude-sonnet-4.5", "anthropic/claude-sonnet-4-5"),
    ("mistral", "mistral-large-latest", "mistral/mistral-large"),
    ("mistral", "mistral-small-latest", "mistral/mistral-small"),
    ("openai", "o1-preview", "openai/o1"),
    # provider prefixes and paths
    ("openai", "openai/gpt-4o", "openai/gpt-4o"),
    ("google", "models/gemini-2.5-flash", "google/gemini-2.5-flash"),
    ("vertex_ai", "publishers/google/models/gemini-2.5-pro", "google/gemini-2.5-pro"),
    ("anthropic", "  Claude-Haiku-4-5  ", "anthropic/claude-haiku-4-5"),
    ("anthropic", "claude-sonnet-4-5@20250929", "anthropic/claude-sonnet-4-5"),
    # Bedrock model ids and inference profiles
    ("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", "bedrock/claude-3-5-sonnet"),
    ("bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0", "bedrock/claude-3-5-sonnet"),
    ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "bedrock/claude-sonnet-4-5"),
    ("bedrock", "global.anthropic.claude-haiku-4-5-20251001-v1:0", "bedrock/claude-haiku-4-5"),
    ("aws", "eu.anthropic.claude-3-7-sonnet-20250219-v1:0", "bedrock/claude-3-7-sonnet"),
    ("aws", "meta.llama3-1-70b-instruct-v1:0", "bedrock/llama3-1-70b-instruct"),
    ("aws.bedrock", "us.meta.llama3-3-70b-instruct-v1:0", "bedrock/llama3-3-70b-instruct"),
    ("bedrock", "amazon.nova-pro-v1:0", "bedrock/nova-pro"),
    ("bedrock", "us.amazon.nova-micro-v1:0", "bedrock/nova-micro"),
    ("bedrock", "amazon.titan-embed-text-v2:0", "bedrock/titan-embed-text-v2"),
    ("bedrock", "amazon.titan-embed-text-v1", "bedrock/titan-embed-text-v1"),
    ("bedrock", "cohere.embed-english-v3", "bedrock/embed-english-v3"),
    (
        "bedrock",
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
        "bedrock/claude-3-haiku",
    ),
    # provider aliases
    ("azure", "gpt-4o", "openai/gpt-4o"),
    ("azure_openai", "gpt-4o-mini", "openai/gpt-4o-mini"),
    ("azure.ai.openai", "text-embedding-3-large", "openai/text-embedding-3-large"),
    ("gemini", "gemini-2.5-flash-lite", "google/gemini-2.5-flash-lite"),
    ("gcp.gemini", "gemini-2.5-pro", "google/gemini-2.5-pro"),
    ("gcp.vertex_ai", "gemini-embedding-001", "google/gemini-embedding-001"),
    ("mistral_ai", "mistral-embed", "mistral/mistral-embed"),
    ("OpenAI", "text-embedding-3-small", "openai/text-embedding-3-small"),
]


@pytest.mark.parametrize(("provider", "model", "key"), RESOLVES)
def test_name_resolves(provider: str, model: str, key: str) -> None:
    rating = default_pricer().rate(
        UsageEvent(provider=provider, model=model, input_tokens=1000, output_tokens=10)
    )
    assert rating.priced, rating.unpriced_reason
    assert rating.model_key == key
    assert rating.price_ref.startswith((key + "@", key + "["))  # "[": a platform row
    assert rating.cost_total > 0


UNKNOWN: list[tuple[str, str, str]] = [
    ("openai", "gpt-7-ultra", "unknown model 'gpt-7-ultra' for provider 'openai'"),
    ("anthropic", "claude-sonnet-9", "unknown model 'claude-sonnet-9' for provider 'anthropic'"),
    # A Bedrock model is not an Anthropic API model and vice versa: no cross-provider guessing.
    ("anthropic", "llama3-1-70b-instruct", "unknown model 'llama3-1-70b-instruct' for provider"),
    ("openai", "gemini-2.5-pro", "unknown model 'gemini-2.5-pro' for provider 'openai'"),
    # A preview name is not silently priced as its GA model.
    ("google", "gemini-2.5-flash-preview-05-20", "unknown model 'gemini-2.5-flash-preview-05-20'"),
    ("acme-llm", "gpt-4o", "unknown model 'gpt-4o' for provider 'acme-llm' (provider not in"),
]


@pytest.mark.parametrize(("provider", "model", "reason"), UNKNOWN)
def test_unknown_names_are_unpriced_with_a_reason(provider: str, model: str, reason: str) -> None:
    rating = default_pricer().rate(
        UsageEvent(provider=provider, model=model, input_tokens=1000, output_tokens=10)
    )
    assert not rating.priced
    assert rating.unpriced_reason.startswith(reason)
    assert rating.price_ref == ""
    assert rating.cost_total == 0


def test_response_model_is_billed_when_known() -> None:
    pricer = default_pricer()
    served = UsageEvent(
        provider="openai", model="gpt-4o", response_model="gpt-4o-2024-05-13", input_tokens=10**5
    )
    assert pricer.rate(served).model_key == "openai/gpt-4o-2024-05-13"
    unknown_served = served.model_copy(update={"response_model": "gpt-4o-experimental-x"})
    assert pricer.rate(unknown_served).model_key == "openai/gpt-4o"


def test_candidates_try_the_exact_name_first() -> None:
    assert model_candidates("amazon.titan-embed-text-v2:0") == [
        "amazon.titan-embed-text-v2:0",
        "titan-embed-text-v2:0",
        "titan-embed-text-v2",
        "titan-embed-text",
    ]


@pytest.mark.parametrize(
    ("when", "input_per_million", "ref"),
    [
        (datetime(2025, 12, 1, 23, 59, tzinfo=UTC), "2", "mistral/mistral-large@2024-11-18"),
        (datetime(2025, 12, 2, tzinfo=UTC), "0.5", "mistral/mistral-large@2025-12-02"),
        (datetime(2026, 11, 1, tzinfo=UTC), "0.5", "mistral/mistral-large@2025-12-02"),
    ],
)
def test_latest_alias_resolves_by_effective_date(
    when: datetime, input_per_million: str, ref: str
) -> None:
    """`mistral-large-latest` bills what the alias pointed to at the event's time; the pinned
    2411 snapshot keeps its own price after the alias moved to Large 3."""
    pricer = default_pricer()
    latest = pricer.rate(
        UsageEvent(
            provider="mistral", model="mistral-large-latest", event_time=when, input_tokens=10**6
        )
    )
    assert latest.price_ref == ref
    assert latest.cost_input == Decimal(input_per_million)
    pinned = pricer.rate(
        UsageEvent(
            provider="mistral", model="mistral-large-2411", event_time=when, input_tokens=10**6
        )
    )
    assert pinned.cost_input == Decimal(2)
