"""The fast decoder (``stream.decode``) against the reference (``events.parse_event``).

For every payload, good or bad, both must agree: the same event (equal values, the same fields
set, so the same derived id) or the same ``EventError`` reason, byte for byte. And the fast path
must really take the events producers send (else the equality would hold trivially).
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spendstream.events import EventError, UsageEvent, parse_event
from spendstream.stream import decode
from spendstream.stream.decode import decode_usage_event

START = datetime(2026, 11, 28, 10, tzinfo=UTC)


def outcome(payload: bytes) -> tuple[str, Any]:
    try:
        event = parse_event(payload)
    except EventError as exc:
        return "refused", exc.reason
    return "event", comparable(event)


def fast_outcome(payload: bytes) -> tuple[str, Any]:
    try:
        event = decode_usage_event(payload)
    except EventError as exc:
        return "refused", exc.reason
    return "event", comparable(event)


def comparable(event: UsageEvent) -> tuple[dict[str, Any], set[str]]:
    """Every value and the fields set; without ``event_time`` when it defaulted to "now"
    (which differs between two decodes by microseconds)."""
    values = event.model_dump()
    if "event_time" not in event.model_fields_set:
        del values["event_time"]
    return values, event.model_fields_set


def assert_same(payload: bytes) -> None:
    assert fast_outcome(payload) == outcome(payload), payload


def good_event(rng: random.Random, index: int) -> dict[str, Any]:
    """An SDK-shaped event as a dict (optional fields present or not at random)."""
    data: dict[str, Any] = {
        "event_id": f"ev-{index}",
        "event_time": (START + timedelta(milliseconds=rng.randrange(10**9))).isoformat(),
        "provider": rng.choice(["openai", "anthropic", "google", "mistral", "bedrock"]),
        "model": rng.choice(["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "Gemini 2.5 Pro"]),
        "input_tokens": rng.randrange(0, 200_000),
    }
    data["cache_read_tokens"] = rng.randrange(0, data["input_tokens"] + 1)
    output = rng.randrange(0, 9_000)
    data["output_tokens"] = output
    optional: dict[str, Any] = {
        "reasoning_tokens": rng.randrange(0, output + 1),
        "operation": rng.choice(["chat", "embeddings", "rerank"]),
        "request_count": rng.randrange(1, 50),
        "batch": rng.random() < 0.5,
        "latency_ms": rng.choice([rng.random() * 9_000, rng.randrange(0, 5_000)]),
        "status": rng.choice(["ok", "error"]),
        "error_type": rng.choice([None, "RateLimitError"]),
        "tags": {"team": rng.choice(["search", "ads"]), "env": "prod", "user": f"u{index}"},
        "prompt_hash": "sha256:" + f"{index:016x}",
        "response_cached": rng.random() < 0.2,
        "finish_reason": rng.choice(["stop", "length", None]),
        "max_tokens": rng.choice([None, 512, 4096]),
        "platform": rng.choice([None, "azure", "bedrock"]),
        "region": rng.choice([None, "eu", "us-east-1"]),
        "response_model": rng.choice([None, "gpt-4o-2024-08-06"]),
        "schema_version": 1,
    }
    for key, value in optional.items():
        if rng.random() < 0.6:
            data[key] = value
    if rng.random() < 0.1:
        del data["event_id"]  # derived from the content
    if rng.random() < 0.1:
        data["event_time"] = data["event_time"].replace("+00:00", "Z")
    return data


def test_generated_good_events_decode_equal_and_take_the_fast_path() -> None:
    rng = random.Random(29)
    for index in range(5_000):
        payload = json.dumps(good_event(rng, index)).encode()
        expected = parse_event(payload)
        assert decode._fast(payload) is not None  # the fast path accepts it (no fallback)
        got = decode_usage_event(payload)
        assert got == expected
        assert got.model_fields_set == expected.model_fields_set
        assert got.event_id == expected.event_id
        assert got.to_json_bytes() == expected.to_json_bytes()


def test_sdk_wire_form_takes_the_fast_path() -> None:
    event = UsageEvent(
        provider="openai", model="gpt-4o", input_tokens=10, output_tokens=3, tags={"team": "a"}
    )
    payload = event.to_json_bytes()
    assert decode._fast(payload) == event
    assert decode_usage_event(payload) == parse_event(payload)


# Field -> values that are wrong, or right in a form the fast path declines, or edge cases.
EDGE_VALUES: dict[str, list[Any]] = {
    "schema_version": [1, 2, 0, True, 1.0, "1", None],
    "event_id": ["", "a" * 128, "a" * 129, "bad id", "ok\n", "é", None, 5],
    "event_time": [
        "2026-11-28T10:00:00Z",
        "2026-11-28T10:00:00",
        "2026-11-28T10:00:00+02:00",
        "2026-11-28 10:00:00Z",
        "2026-02-30T10:00:00Z",
        "2026-11-28T23:59:60Z",
        "2026-11-28T10:59:60Z",
        "1969-12-31T23:59:59Z",
        "2100-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "2026-11-28T10:00:00.123456789Z",
        1764324000,
        None,
    ],
    "provider": ["OpenAI", " openai", "openai ", "", " ", "a" * 200, "a" * 201, "İ", None, 3],
    "model": ["gpt-4o ", " gpt", "", "m" * 200, "m" * 201, "modèle", "\x1cgpt", "gpt\u3000"],
    "response_model": [None, "", " x", "gpt-4o", 5],
    "operation": ["chat", "Chat", "image", "unknown", None],
    "input_tokens": [0, -1, 10**12, 10**12 + 1, 10**30, 1.0, 5.5, "5", True, None],
    "output_tokens": [0, -1, 10**12 + 1, 2.0, False],
    "cache_read_tokens": [0, 10**6, -3],
    "reasoning_tokens": [0, 10**6],
    "request_count": [0, 1, 10**6, 10**6 + 1, 1.0],
    "batch": [True, False, 1, 0, "true", None],
    "latency_ms": [0, 1, 1.5, -1, 86_400_000, 86_400_001, 1e308, "1", True, None],
    "status": ["ok", "error", "OK", None],
    "error_type": [None, "", "e" * 200, "e" * 201, 4],
    "provider_cost_usd": [None, 0, "0.1", 0.1, -1, "1e-19", 10**21],
    "tags": [
        {},
        {"Team": "x"},
        {"team": "x" * 256},
        {"team": "x" * 257},
        {"k" * 64: "v"},
        {"k" * 65: "v"},
        {f"k{i}": "v" for i in range(32)},
        {f"k{i}": "v" for i in range(33)},
        {"team": 5},
        {"team\n": "x"},
        {"9team": "x"},
        [],
        None,
    ],
    "prompt_hash": [None, "short", "abcdefgh", "abc defgh", "a" * 129],
    "response_cached": [True, False, 1],
    "finish_reason": [None, "stop", "STOP", " stop", "", "x" * 65],
    "max_tokens": [None, 0, 1, 10**9, 10**9 + 1, 1.0],
    "units": [{}, {"images": 2}, {"audio_seconds": "93.5"}, {"images": 1.5}, None],
    "platform": [None, "azure", "Azure", "", "eu west", "a" * 64, "a" * 65, "é"],
    "region": [None, "eu", "-eu", "eu_1"],
    "unknown_field": [1],
}


@pytest.mark.parametrize("field", sorted(EDGE_VALUES))
def test_each_edge_value_decodes_as_the_reference(field: str) -> None:
    rng = random.Random(field)
    for value in EDGE_VALUES[field]:
        data = good_event(rng, 1)
        data[field] = value
        assert_same(json.dumps(data).encode())
        del data[field]
        assert_same(json.dumps(data).encode())


RAW_PAYLOADS = [
    b"",
    b"null",
    b"[]",
    b"5",
    b'"x"',
    b"{",
    b'{"provider":"openai","model":"gpt-4o","event_time":"2026-11-28T10:00:00Z"}',
    b'{"provider":"openai","model":"gpt-4o","event_time":"2026-11-28T10:00:00Z"} ',
    b' {"provider":"openai","model":"gpt-4o","event_time":"2026-11-28T10:00:00Z"}x',
    b'{"provider":"openai","model":"gpt-4o","event_id":"a"}',
    b'{"provider":"openai","model":"gpt-4o"}',
    b'{"provider":"openai","model":"gpt-4o","event_id":"a","event_time":"2026-11-28T10:00:00Z",'
    b'"input_tokens":5,"input_tokens":7}',
    b'{"provider":"openai","model":"gpt-4o","event_id":"a","event_time":"2026-11-28T10:00:00Z",'
    b'"latency_ms":NaN}',
    b'{"provider":"openai","model":"gpt-\\ud800","event_id":"a","event_time":"2026-11-28T10:00:00Z"}',
    b'{"provider":"openai","model":"gpt-\xff","event_id":"a","event_time":"2026-11-28T10:00:00Z"}',
    b'{"provider":"openai","model":"gpt\x01","event_id":"a","event_time":"2026-11-28T10:00:00Z"}',
    b'{"\\u0070rovider":"openai","model":"gpt-4o","event_id":"a",'
    b'"event_time":"2026-11-28T10:00:00Z"}',
    b'\xef\xbb\xbf{"provider":"openai","model":"gpt-4o","event_id":"a",'
    b'"event_time":"2026-11-28T10:00:00Z"}',
    b'{"provider":"openai","model":"gpt-4o","event_id":"a","event_time":"2026-11-28T10:00:00Z",'
    b'"input_tokens":-0}',
    b'{"provider":"openai","model":"gpt-4o","event_id":"a","event_time":"2026-11-28T10:00:00Z",'
    b'"latency_ms":1E2}',
    b'{"provider":"openai","model":"gpt-4o","event_id":"a","event_time":"2026-11-28T10:00:00Z",'
    b'"input_tokens":10,"cache_read_tokens":6,"cache_write_tokens":5}',
    b'{"provider":"openai","model":"gpt-4o","event_id":"a","event_time":"2026-11-28T10:00:00Z",'
    b'"output_tokens":1,"reasoning_tokens":2}',
    b'{"provider":"openai","model":"gpt-4o","event_id":"a","event_time":"2026-11-28T10:00:00Z",'
    b'"tags":{"team":"a","team":"b"}}',
    b'{"provider":"openai","model":"gpt-4o","event_time":"2026-11-28T10:00:00Z","tags":{"x":"'
    + b"y" * 17_000
    + b'"}}',
]


@pytest.mark.parametrize("payload", RAW_PAYLOADS)
def test_raw_payloads_decode_as_the_reference(payload: bytes) -> None:
    assert_same(payload)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**13), max_value=10**13)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(sorted(EDGE_VALUES)), JSON_VALUES, max_size=6),
    st.integers(min_value=0, max_value=10**6),
)
def test_arbitrary_field_values_decode_as_the_reference(
    overrides: dict[str, Any], seed: int
) -> None:
    data = good_event(random.Random(seed), seed)
    data.update(overrides)
    assert_same(json.dumps(data).encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.integers(min_value=0, max_value=300))
def test_damaged_payloads_decode_as_the_reference(noise: bytes, cut: int) -> None:
    payload = json.dumps(good_event(random.Random(cut), cut)).encode()
    assert_same(payload[:cut] + noise + payload[cut:])
