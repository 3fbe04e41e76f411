"""Usage event v1 validation (pure unit tests)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from spendstream.events import MAX_EVENT_BYTES, EventError, UsageEvent, parse_event
from spendstream.stream.deadletter import MAX_KEPT_PAYLOAD_BYTES, DeadLetter
from spendstream.stream.pipeline import chunk_by_bytes
from spendstream.stream.processor import RawMessage


def payload(**fields: object) -> bytes:
    base: dict[str, object] = {"provider": "OpenAI", "model": "gpt-4o", "input_tokens": 5}
    base.update(fields)
    return json.dumps(base).encode()


def test_defaults_fill_id_and_time_and_normalise() -> None:
    event = parse_event(payload(event_time="2026-11-01T12:00:00+02:00"))
    assert len(event.event_id) == 32
    assert event.event_time == datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert event.provider == "openai"
    assert event.request_count == 1


def test_round_trip_is_identical() -> None:
    event = UsageEvent(
        provider="anthropic",
        model="claude-sonnet-4-5",
        input_tokens=100,
        cache_read_tokens=60,
        cache_write_tokens=20,
        output_tokens=30,
        reasoning_tokens=10,
        provider_cost_usd=Decimal("0.000123456789012345"),
        event_time=datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5))),
        tags={"team": "search", "cost-center": "42"},
    )
    again = parse_event(event.to_json_bytes())
    assert again == event
    assert again.provider_cost_usd == Decimal("0.000123456789012345")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"input_tokens": -1}, "input_tokens: Input should be greater than or equal to 0"),
        ({"input_tokens": 2.5}, "input_tokens: Input should be a valid integer"),
        ({"input_tokens": True}, "input_tokens: Input should be a valid integer"),
        ({"event_time": "2026-11-01T10:00:00"}, "event_time: Input should have timezone info"),
        ({"extra": 1}, "extra: Extra inputs are not permitted"),
        ({"model": ""}, "model: String should have at least 1 character"),
        ({"request_count": 0}, "request_count"),
        ({"reasoning_tokens": 3}, "reasoning_tokens exceed output_tokens"),
        ({"tags": {"team": 5}}, "tags.team: Input should be a valid string"),
        (
            {"tags": {f"k{i}": "v" for i in range(40)}},
            "tags: Dictionary should have at most 32 items",
        ),
        ({"event_id": "has spaces"}, "event_id: String should match pattern"),
        ({"operation": "dance"}, "operation: Input should be"),
    ],
)
def test_invalid_fields_are_rejected_with_reason(fields: dict[str, object], reason: str) -> None:
    with pytest.raises(EventError) as info:
        parse_event(payload(**fields))
    assert reason in info.value.reason


def test_oversize_and_non_json() -> None:
    with pytest.raises(EventError, match=f"limit is {MAX_EVENT_BYTES}"):
        parse_event(b"{" + b" " * MAX_EVENT_BYTES + b"}")
    with pytest.raises(EventError, match="not valid JSON"):
        parse_event(b"{nope")


def test_dead_letter_keeps_exact_bytes_and_caps_huge_payloads() -> None:
    binary = b"\xff\x00\x01 not utf-8"
    letter = DeadLetter.for_payload(binary, "not valid JSON", "usage", 2, 40)
    again = DeadLetter.model_validate_json(letter.model_dump_json())
    assert again.raw_payload() == binary
    assert again.payload_bytes == len(binary) and not again.payload_truncated

    huge = b"x" * (MAX_KEPT_PAYLOAD_BYTES * 3)
    letter = DeadLetter.for_payload(huge, "too big", "usage", 0, 7)
    assert letter.payload_truncated
    assert letter.raw_payload() == huge[:MAX_KEPT_PAYLOAD_BYTES]
    assert letter.payload_bytes == len(huge)
    assert letter.payload_sha256 == hashlib.sha256(huge).hexdigest()
    assert len(letter.model_dump_json()) < 1024 * 1024  # fits the producer's default request


def test_chunk_by_bytes_bounds_slices_and_keeps_every_message_once() -> None:
    sizes = [10, 10, 30, 5, 100, 1, 1]
    messages = [RawMessage(b"x" * size, "t", 0, offset) for offset, size in enumerate(sizes)]
    chunks = list(chunk_by_bytes(messages, 25))
    assert [[m.offset for m in chunk] for chunk in chunks] == [[0, 1], [2], [3], [4], [5, 6]]
    assert list(chunk_by_bytes([], 25)) == []
