"""The fast path (msgspec decode + scaled-integer pricing) decides every line exactly as the
reference path (``parse_event`` + ``Pricer.rate``): the same entries with the same ledger
columns, the same dead letters with byte-identical reasons, the same duplicates and runs.

Both ``BatchProcessor``s (``fast_path`` on and off) process the same messages: SDK-shaped
packs with every optional field, the poison fuzzer's mutations, edge values at every bound, and
hypothesis-generated objects over the event's field names.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from spendstream.events import UsageEvent
from spendstream.pricing import Pricer, default_pricer
from spendstream.pricing.scaled import ScaledRating, scaled_money
from spendstream.sinks.entry import LedgerEntry, ledger_columns
from spendstream.stream.fastpath import FastDecoder, PackedEvent
from spendstream.stream.processor import BatchProcessor, ProcessedBatch, RawMessage, TimeBounds
from tests.support.fuzz import generate_messages

NOW = datetime.now(UTC).replace(microsecond=0)
INGESTED = datetime(2026, 12, 1, tzinfo=UTC)
STAMP = NOW.timestamp()  # the records' time: both paths judge event times against the same one


def processors(pricer: Pricer | None = None, **options: Any) -> tuple[BatchProcessor, ...]:
    pricer = pricer or default_pricer()
    bounds = TimeBounds(max_age=timedelta(days=400), max_future=timedelta(days=1))
    return tuple(
        BatchProcessor(pricer, bounds, fast_path=fast, **options) for fast in (True, False)
    )


def assert_same_batches(
    fast: ProcessedBatch[LedgerEntry], slow: ProcessedBatch[LedgerEntry]
) -> None:
    assert len(fast.entries) == len(slow.entries)
    assert ledger_columns(fast.entries, 3, INGESTED) == ledger_columns(slow.entries, 3, INGESTED)
    for mine, theirs in zip(fast.entries, slow.entries, strict=True):
        for name in UsageEvent.model_fields:
            found, expected = getattr(mine.event, name), getattr(theirs.event, name)
            assert (type(found), found) == (type(expected), expected), name
        assert scaled_money(mine.rating) == scaled_money(theirs.rating)
        assert mine.origin == theirs.origin
        assert mine.event.to_json_bytes() == theirs.event.to_json_bytes()
    letters = [(d.reason, d.payload, d.payload_base64, d.source_index) for d in fast.dead_letters]
    assert letters == [
        (d.reason, d.payload, d.payload_base64, d.source_index) for d in slow.dead_letters
    ]
    counts = ("duplicates_in_batch", "events_seen", "leading_run", "longest_run", "trailing_run")
    assert [getattr(fast, c) for c in counts] == [getattr(slow, c) for c in counts]


def run_both(messages: list[RawMessage], **options: Any) -> ProcessedBatch[LedgerEntry]:
    fast, slow = processors(**options)
    decided = fast.process(messages)
    assert_same_batches(decided, slow.process(messages))
    return decided


def sdk_event(rng: random.Random, index: int) -> UsageEvent:
    """An event as the SDK's ``record()`` builds it, optional fields now and then."""
    inputs = rng.randint(0, 200_000)
    outputs = rng.randint(0, 5_000)
    fields: dict[str, Any] = {
        "provider": rng.choice(["openai", "anthropic", "OpenAI ", "google", "mistral", "acme"]),
        "model": rng.choice(["gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5", " o3-mini", "x"]),
        "event_time": NOW - timedelta(seconds=rng.randint(0, 3_600)),
        "input_tokens": inputs,
        "output_tokens": outputs,
        "cache_read_tokens": rng.randint(0, inputs) if rng.random() < 0.3 else 0,
        "reasoning_tokens": rng.randint(0, outputs) if rng.random() < 0.2 else 0,
        "batch": rng.random() < 0.1,
        "latency_ms": rng.choice([None, rng.random() * 10_000, float(rng.randint(0, 9))]),
        "tags": {"team": f"t{index % 7}", "app": "bot", "user": f"u{rng.randint(0, 50)}"},
    }
    optional: dict[str, Any] = {
        "prompt_hash": f"sha256:{rng.getrandbits(64):016x}",
        "finish_reason": rng.choice(["stop", "Length ", "tool_calls"]),
        "max_tokens": rng.randint(1, 4096),
        "platform": rng.choice(["azure", "Bedrock"]),
        "region": rng.choice(["eu", "us-east-1"]),
        "trace_id": f"{rng.getrandbits(128):032x}",
        "session_id": f"s-{index % 13}",
        "run_id": f"otel-{index % 5}",
        "agent": rng.choice(["planner", " Writer "]),
        "step": rng.randint(1, 20),
        "parent": "otel-a-b",
        "tool": "search",
        "customer": rng.choice(["acme", "globex "]),
        "response_model": "gpt-4o-mini-2024-07-18",
        "status": "error",
        "error_type": "RateLimitError",
        "response_cached": True,
        "operation": rng.choice(["embeddings", "image", "chat"]),
        "request_count": rng.randint(1, 5),
        "units": {"images.1024x1024": 2},
    }
    for name, value in optional.items():
        if rng.random() < 0.15:
            fields[name] = value
    if rng.random() < 0.15:  # cache writes, some of them 1-hour (Anthropic)
        writes = rng.randint(0, inputs - fields["cache_read_tokens"])
        fields["cache_write_tokens"] = writes
        fields["cache_write_1h_tokens"] = rng.choice([0, writes, rng.randint(0, writes)])
    return UsageEvent(**fields)


def packs(lines: list[bytes], size: int) -> list[RawMessage]:
    return [
        RawMessage(b"\n".join(lines[start : start + size]), "usage", 0, start, True, STAMP)
        for start in range(0, len(lines), size)
    ]


def test_sdk_packs_take_the_fast_path_and_store_the_same_rows() -> None:
    rng = random.Random(29)
    lines = [sdk_event(rng, index).to_json_bytes() for index in range(6_000)]
    lines += lines[:50]  # re-sent events: in-batch duplicates
    decided = run_both(packs(lines, 100))
    fast = sum(isinstance(entry.event, PackedEvent) for entry in decided.entries)
    scaled = sum(isinstance(entry.rating, ScaledRating) for entry in decided.entries)
    assert fast > 4_000 and scaled > 800 and decided.duplicates_in_batch >= 50


def test_poison_fuzz_lines_decide_the_same() -> None:
    messages = [
        RawMessage(
            b"\n".join(line.payload for line in lines) if packed else lines[0].payload,
            "usage",
            number % 4,
            number,
            packed,
            NOW.timestamp(),
        )
        for number, (lines, packed) in enumerate(generate_messages(3_000, seed=29, now=NOW))
    ]
    decided = run_both(messages)
    assert decided.entries and decided.dead_letters


def test_required_tags_policy_decides_the_same() -> None:
    rng = random.Random(7)
    lines = [sdk_event(rng, index).to_json_bytes() for index in range(300)]
    lines += [line.replace(b'"app":"bot",', b"") for line in lines[:40]]
    required = ("team", "app")

    def missing(tags: dict[str, str]) -> list[str]:
        return [key for key in required if not tags.get(key)]

    decided = run_both(packs(lines, 30), missing_tags=missing)
    assert len(decided.dead_letters) == 40


def valid_fields() -> dict[str, Any]:
    return {
        "event_id": "e-1",
        "event_time": (NOW - timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 1_000,
        "output_tokens": 10,
        "tags": {"team": "a"},
    }


# (field, values): each value replaces the field in a valid event, one message per value
EDGES: dict[str, list[Any]] = {
    "schema_version": [1, 2, 0, True, 1.0, "1", None],
    "event_id": ["", "a" * 128, "a" * 129, "a b", "é", "a\n", None, 5, "a:b.c-d_e"],
    "event_time": [
        "2026-11-28T10:00:00z",
        "2026-11-28t10:00:00+02:00",
        "2026-11-28T10:00:00",
        "2026-11-28 10:00:00Z",
        "2016-12-31T23:59:60Z",
        "2026-11-28T10:00:00.1234567891Z",
        "1969-12-31T23:59:59Z",
        "2300-01-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-28T10:00:00+24:00",
        1764500000,
        None,
        "",
    ],
    "provider": ["", " ", " OpenAI\t", "\u00a0openai", "openai\x1c", "\u2028x", "p" * 200],
    "model": ["", "m" * 200, "m" * 201, " gpt-4o ", "gpt-4o\u3000", None, 3],
    "response_model": [None, "", " gpt-4o-mini", "r" * 201],
    "operation": ["chat", "embeddings", "Chat", "other", "", None],
    "input_tokens": [0, 10**12, 10**12 + 1, -1, 1.0, True, "5", 2**64, None],
    "output_tokens": [0, 10**12, -1, 1e3],
    "cache_read_tokens": [0, 1_000, 1_001, -1],
    "cache_write_tokens": [0, 1_000, 1_001],
    "cache_write_1h_tokens": [0, 1, -1, 1.0, None],  # 1 > cache_write_tokens (0): refused
    "reasoning_tokens": [0, 10, 11],
    "request_count": [0, 1, 10**6, 10**6 + 1, True],
    "batch": [True, False, 1, 0, "true", None],
    "latency_ms": [0, -0.0, -0, 86_400_000, 86_400_000.5, -1e-9, 1e308, 812.5, 0.1, None, True],
    "status": ["ok", "error", "OK", "", None],
    "error_type": [None, "", "x" * 200, "x" * 201],
    "provider_cost_usd": [None, 0, "0.001", 1.5, -1, "abc"],
    "tags": [{}, {"Team": "a"}, {"team": "x" * 256}, {"team": "x" * 257}, {"a" * 65: "b"}, None],
    "prompt_hash": [None, "a" * 7, "a" * 8, "a" * 128, "a" * 129, "abc def12", ""],
    "response_cached": [True, False, 1],
    "finish_reason": [None, "", " Stop ", "x" * 64, "x" * 65, "\t"],
    "max_tokens": [None, 0, 1, 10**9, 10**9 + 1],
    "units": [{}, {"images": 1}, {"images": 1.5}, None],
    "platform": [None, "", " Azure", "azure/eu", "a" * 64, "a" * 65, "_x"],
    "region": [None, "EU", "eu-west-1", "-eu"],
    "trace_id": [None, "", "t" * 128, "t" * 129, "t t"],
    "session_id": [None, "s", "s/1"],
    "run_id": [None, "otel-a-b", "r\u00e9"],
    "agent": [None, "", " ", " planner ", "a" * 201],
    "step": [None, 0, 1, 10**6, 10**6 + 1, 1.5],
    "parent": [None, "p", "p p"],
    "tool": [None, "search", " "],
    "customer": [None, "acme", "c" * 256, "c" * 257, " c "],
    "unknown_field": ["x"],
}


def test_every_edge_value_decides_the_same() -> None:
    lines = []
    for field, values in EDGES.items():
        for value in values:
            fields = {**valid_fields(), "event_id": f"edge-{len(lines)}", field: value}
            lines.append(json.dumps(fields).encode())
            if value is None and field not in ("event_id", "event_time"):
                lines.append(json.dumps({k: v for k, v in fields.items() if k != field}).encode())
    # spellings of the same event: spacing, key order, duplicate keys, escapes, whitespace
    text = json.dumps(valid_fields())
    lines += [
        text.replace(":", ": ").encode(),
        json.dumps(dict(reversed(valid_fields().items()))).encode(),
        text.replace('"input_tokens": 1000', '"input_tokens": 7, "input_tokens": 1000').encode(),
        text.replace("openai", "open\\u0061i").encode(),
        text.replace("openai", "\\ud800").encode(),
        b"\xef\xbb\xbf" + text.encode(),
        text.encode() + b"\r",
        b"  " + text.encode(),
        text.encode()[:-1],
        b"[]",
        b"null",
        b"{}",
        text.replace("openai", "op\xffai").encode("latin-1"),
        json.dumps({**valid_fields(), "padding": "x" * 20_000}).encode(),
    ]
    for index, line in enumerate(lines):
        run_both([RawMessage(line, "usage", 0, index, False, NOW.timestamp())])
    run_both(packs(lines, 25))


def test_overrides_with_tags_and_fine_rates_price_the_same() -> None:
    pricer = Pricer.from_config(
        {
            "overrides": [
                {
                    "name": "fine",
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "input": Decimal("0.123456789123"),
                    "output": Decimal("7.777777777777"),
                    "tags": {"team": "t3"},
                },
                {"name": "off", "provider": "anthropic", "model": "*", "discount": Decimal("0.3")},
            ]
        }
    )
    rng = random.Random(3)
    lines = [sdk_event(rng, index).to_json_bytes() for index in range(2_000)]
    fast, slow = processors(pricer)
    assert_same_batches(fast.process(packs(lines, 100)), slow.process(packs(lines, 100)))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["openai", " gpt-4o ", "2026-12-01T00:00:00Z", "ok", "chat", "e-1"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)
FIELD_NAMES = [*UsageEvent.model_fields, "extra"]


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=12))
def test_arbitrary_objects_decide_the_same(changes: dict[str, Any]) -> None:
    fields = {**valid_fields(), **changes}
    line = json.dumps(fields).encode()
    run_both([RawMessage(line, "usage", 0, 0, False, NOW.timestamp())])


def test_the_decoder_declines_what_it_cannot_decide() -> None:
    decoder = FastDecoder()
    assert decoder.decode(json.dumps(valid_fields()).encode()) is not None
    without_id = {k: v for k, v in valid_fields().items() if k != "event_id"}
    assert decoder.decode(json.dumps(without_id).encode()) is None  # id derived by parse_event
    with_units = {**valid_fields(), "units": {"images": 1}}
    assert decoder.decode(json.dumps(with_units).encode()) is None
