"""Usage units read from provider responses (shapes as documented by each provider's API
reference), then priced: the costs are computed by hand from the price pages."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from spendstream.events import UsageEvent
from spendstream.pricing import default_pricer
from spendstream.producers import extract_usage
from spendstream.producers.unit_extractors import image_units

D = Decimal
WHEN = datetime(2025, 11, 1, tzinfo=UTC)

ANTHROPIC_SEARCH = {
    "id": "msg_01",
    "type": "message",
    "model": "claude-sonnet-4-5-20250929",
    "usage": {
        "input_tokens": 6039,
        "output_tokens": 931,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "server_tool_use": {"web_search_requests": 3},
    },
}
ANTHROPIC_STREAM = [
    {
        "type": "message_start",
        "message": {
            "model": "claude-sonnet-4-5-20250929",
            "usage": {"input_tokens": 6039, "output_tokens": 1},
        },
    },
    {
        "type": "message_delta",
        "usage": {"output_tokens": 931, "server_tool_use": {"web_search_requests": 2}},
    },
]
OPENAI_RESPONSES_SEARCH = {
    "object": "response",
    "model": "gpt-4.1-2025-04-14",
    "output": [
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        {"type": "web_search_call", "id": "ws_2", "status": "completed"},
        {"type": "file_search_call", "id": "fs_1", "status": "completed"},
        {"type": "message", "id": "msg_1", "content": []},
    ],
    "usage": {
        "input_tokens": 328,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 356,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 684,
    },
}
DALLE3 = {"created": 1713833628, "data": [{"url": "https://x/1.png", "revised_prompt": "a cat"}]}
GPT_IMAGE = {
    "created": 1713833628,
    "data": [{"b64_json": "aGk="}, {"b64_json": "aGk="}],
    "size": "1024x1536",
    "quality": "medium",
    "usage": {
        "input_tokens": 50,
        "input_tokens_details": {"text_tokens": 50, "image_tokens": 0},
        "output_tokens": 3120,
        "total_tokens": 3170,
    },
}
WHISPER = {"text": "hello", "usage": {"type": "duration", "seconds": 94}}
TRANSCRIBE = {
    "text": "hello",
    "usage": {
        "type": "tokens",
        "input_tokens": 1214,
        "input_token_details": {"text_tokens": 14, "audio_tokens": 1200},
        "output_tokens": 101,
        "total_tokens": 1315,
    },
}
CHAT_AUDIO = {
    "object": "chat.completion",
    "model": "gpt-4o-audio-preview-2024-12-17",
    "usage": {
        "prompt_tokens": 100,
        "completion_tokens": 300,
        "prompt_tokens_details": {"audio_tokens": 60, "cached_tokens": 0},
        "completion_tokens_details": {"audio_tokens": 250, "reasoning_tokens": 0},
    },
}
GEMINI_GROUNDED = {
    "candidates": [{"groundingMetadata": {"webSearchQueries": ["uefa euro 2024 winner"]}}],
    "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 80},
    "modelVersion": "gemini-2.5-flash",
}


def as_object(value: Any) -> Any:
    """The same response as an SDK object (attributes instead of keys)."""
    if isinstance(value, dict):
        return SimpleNamespace(**{key: as_object(item) for key, item in value.items()})
    if isinstance(value, list):
        return [as_object(item) for item in value]
    return value


@pytest.mark.parametrize("wrap", [lambda v: v, as_object], ids=["dict", "object"])
@pytest.mark.parametrize(
    ("response", "provider", "tokens", "units"),
    [
        (ANTHROPIC_SEARCH, "anthropic", (6039, 931), {"web_search_calls": 3}),
        (ANTHROPIC_STREAM, "anthropic", (6039, 931), {"web_search_calls": 2}),
        (
            OPENAI_RESPONSES_SEARCH,
            "openai",
            (328, 356),
            {"web_search_calls": 2, "file_search_calls": 1},
        ),
        (DALLE3, "openai", (0, 0), {"images": 1}),
        (GPT_IMAGE, "openai", (0, 0), {"images.1024x1536.medium": 2}),
        (WHISPER, "openai", (0, 0), {"audio_seconds": 94}),
        (TRANSCRIBE, "openai", (14, 101), {"audio_input_tokens": 1200}),
        (
            CHAT_AUDIO,
            "openai",
            (40, 50),
            {"audio_input_tokens": 60, "audio_output_tokens": 250},
        ),
        (GEMINI_GROUNDED, "gemini", (20, 80), {"web_search_calls": 1}),
    ],
)
def test_units_from_responses(
    wrap: Any, response: Any, provider: str, tokens: tuple[int, int], units: dict[str, int]
) -> None:
    extracted = extract_usage(wrap(response), provider)
    assert (extracted.input_tokens, extracted.output_tokens) == tokens
    assert extracted.units == {name: D(value) for name, value in units.items()}
    event = UsageEvent(provider=provider, model="m", **extracted.event_fields())
    assert event.units == extracted.units


def test_token_only_responses_carry_no_units() -> None:
    plain = {"usage": {"prompt_tokens": 5, "completion_tokens": 7}, "model": "gpt-4o"}
    assert "units" not in extract_usage(plain, "openai").event_fields()


def test_image_units_helper_names_variants() -> None:
    assert image_units(2, "1024x1024", "hd") == {"images.1024x1024.hd": 2}
    assert image_units(1, "1024x1024", "auto") == {"images.1024x1024": 1}
    assert image_units(0, "1024x1024") == {}


def priced(provider: str, model: str, response: Any, **extra: Any) -> Decimal:
    fields = {**extract_usage(response, provider).event_fields(), **extra}
    rating = default_pricer().rate(
        UsageEvent(provider=provider, model=model, event_time=WHEN, **fields)
    )
    assert rating.priced, rating.unpriced_reason
    return rating.cost_total


def test_extracted_units_are_priced_exactly() -> None:
    # claude-sonnet-4-5 $3 / $15 per million tokens + $10 per 1,000 searches
    sonnet = D(6039) * 3 / 10**6 + D(931) * 15 / 10**6
    assert priced("anthropic", "claude-sonnet-4-5", ANTHROPIC_SEARCH) == sonnet + D("0.03")
    # whisper-1: $0.006 per minute
    assert priced("openai", "whisper-1", WHISPER) == D(94) * D("0.006") / 60
    # gpt-4o-transcribe: text $2.50 in / $10 out, audio $6 per million input tokens
    transcribe = (D(14) * D("2.50") + D(101) * 10 + D(1200) * 6) / 10**6
    assert priced("openai", "gpt-4o-transcribe", TRANSCRIBE) == transcribe
    # gpt-image-1 medium 1024x1536: $0.063 per image
    assert priced("openai", "gpt-image-1", GPT_IMAGE) == 2 * D("0.063")
    # dall-e-3: the response has no size or quality, the request had them
    dalle = extract_usage(DALLE3, "openai")
    assert dalle.units == {"images": 1}
    units = image_units(1, "1024x1024", "hd")
    assert priced("openai", "dall-e-3", DALLE3, units=units) == D("0.080")
