"""Usage extractors on recorded provider responses (documented shapes), as dicts and objects."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from spendstream.events import UsageEvent
from spendstream.producers import UsageExtractionError, extract_usage

FIXTURES = Path(__file__).parent / "fixtures" / "responses"

# fixture, provider, expected (input, output, cache_read, cache_write, reasoning), model, shape
CASES = [
    ("openai_chat", "openai", (1117, 946, 1024, 0, 704), "o3-mini-2025-01-31", "openai.chat"),
    (
        "openai_chat_stream",
        "openai",
        (2048, 12, 1920, 0, 0),
        "gpt-4o-mini-2024-07-18",
        "openai.chat",
    ),
    (
        "openai_responses",
        "openai",
        (3328, 1209, 3072, 0, 1152),
        "o4-mini-2025-04-16",
        "openai.responses",
    ),
    # Anthropic cache counts are additive: 21 + 188086 + 0.
    (
        "anthropic_message",
        "anthropic",
        (188107, 393, 0, 188086, 0),
        "claude-sonnet-4-20250514",
        "anthropic",
    ),
    # message_start (input 25, cache read 2048) + message_delta (output 15).
    (
        "anthropic_stream",
        "anthropic",
        (2073, 15, 2048, 0, 0),
        "claude-sonnet-4-20250514",
        "anthropic",
    ),
    # Thoughts are billed as output: 120 candidates + 1015 thoughts.
    (
        "gemini_generate_content",
        "gemini",
        (10240, 1135, 8192, 0, 1015),
        "gemini-2.5-flash",
        "gemini",
    ),
    ("gemini_stream", "gemini", (9, 543, 0, 0, 532), "gemini-2.5-pro", "gemini"),
    ("bedrock_converse", "aws.bedrock", (2060, 48, 1024, 1024, 0), None, "bedrock"),
    ("bedrock_converse_stream", "aws.bedrock", (530, 7, 500, 0, 0), None, "bedrock"),
]


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def as_object(value: Any, snake_case: bool = False) -> Any:
    """SDK-like objects: attributes instead of keys (google-genai uses snake_case names)."""
    if isinstance(value, dict):
        return SimpleNamespace(
            **{(snake(k) if snake_case else k): as_object(v, snake_case) for k, v in value.items()}
        )
    if isinstance(value, list):
        return [as_object(item, snake_case) for item in value]
    return value


def counts(usage: Any) -> tuple[int, int, int, int, int]:
    return (
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
    )


@pytest.mark.parametrize(("name", "provider", "expected", "model", "shape"), CASES)
@pytest.mark.parametrize("form", ["dict", "object", "snake_object"])
@pytest.mark.parametrize("with_provider", [True, False])
def test_every_provider_shape(
    name: str,
    provider: str,
    expected: tuple[int, ...],
    model: str | None,
    shape: str,
    form: str,
    with_provider: bool,
) -> None:
    data = load(name)
    source = data if form == "dict" else as_object(data, snake_case=form == "snake_object")
    usage = extract_usage(source, provider if with_provider else None)
    assert counts(usage) == expected
    assert usage.response_model == model
    assert usage.shape == shape
    # The result always satisfies the event's invariants (cached <= input, reasoning <= output).
    event = UsageEvent(provider=provider, model="m", **usage.event_fields())
    assert event.input_tokens == expected[0]


@pytest.mark.parametrize(
    ("name", "provider", "expected"),
    [(name, provider, expected) for name, provider, expected, _, _ in CASES],
)
def test_bare_usage_object_and_final_chunk(
    name: str, provider: str, expected: tuple[int, ...]
) -> None:
    data = load(name)
    if isinstance(data, list) and name != "anthropic_stream":
        final = data[-1]  # the final chunk alone carries the whole usage
        assert counts(extract_usage(final, provider)) == expected
    elif isinstance(data, dict):
        bare = data.get("usage") or data.get("usageMetadata")
        assert counts(extract_usage(bare, provider)) == expected
        assert counts(extract_usage(as_object(bare), provider)) == expected


def test_anthropic_usage_needs_the_provider_or_cache_fields_to_be_additive() -> None:
    # Same field names as OpenAI Responses; the provider decides the (additive) semantics.
    usage = {"input_tokens": 100, "output_tokens": 5}
    assert extract_usage(usage, "anthropic").shape == "anthropic"
    assert extract_usage(usage, "openai").shape == "openai.responses"
    with_cache = {"input_tokens": 100, "output_tokens": 5, "cache_read_input_tokens": 50}
    assert extract_usage(with_cache).input_tokens == 150
    # SDK objects expose absent fields as None attributes.
    sdk_usage = SimpleNamespace(
        input_tokens=100,
        output_tokens=5,
        cache_creation_input_tokens=None,
        cache_read_input_tokens=None,
    )
    assert counts(extract_usage(sdk_usage, "anthropic")) == (100, 5, 0, 0, 0)


def test_anthropic_delta_with_cumulative_input_overrides_start() -> None:
    stream = load("anthropic_stream")
    stream[-2]["usage"] = {"input_tokens": 30, "cache_read_input_tokens": 2048, "output_tokens": 20}
    assert counts(extract_usage(stream)) == (2078, 20, 2048, 0, 0)


def test_anthropic_1h_cache_writes_are_kept_apart_in_responses_and_streams() -> None:
    # Hostile report 13, item 3: 1-hour writes are priced at their own rate, so they are kept.
    usage = {
        "input_tokens": 100,
        "cache_creation_input_tokens": 300,
        "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
        "output_tokens": 50,
    }
    found = extract_usage({"type": "message", "usage": usage}, "anthropic")
    assert (found.cache_write_tokens, found.cache_write_1h_tokens) == (300, 200)
    assert UsageEvent(provider="anthropic", model="m", **found.event_fields()).cache_write_1h_tokens
    stream = load("anthropic_stream")
    stream[0]["message"]["usage"] = usage  # message_start carries the cache counts
    streamed = extract_usage(stream)
    assert (streamed.cache_write_tokens, streamed.cache_write_1h_tokens) == (300, 200)
    without = {k: v for k, v in usage.items() if k != "cache_creation"}
    assert extract_usage(without, "anthropic").cache_write_1h_tokens == 0


def test_missing_usage_is_a_clear_error() -> None:
    with pytest.raises(UsageExtractionError, match="no usage found"):
        extract_usage({"id": "x", "choices": []}, "openai")
    chunks = load("openai_chat_stream")[:-1]  # stream without include_usage
    with pytest.raises(UsageExtractionError, match="include_usage"):
        extract_usage(chunks, "openai")
    with pytest.raises(UsageExtractionError, match="unrecognised"):
        extract_usage({"usage": {"tokens": 3}})
