"""Fast decoding of usage events: msgspec for the common case, pydantic as the reference.

``events.parse_event`` (pydantic) is the definition of a valid event and of every refusal's
reason. :func:`decode_usage_event` returns exactly what it returns (an equal ``UsageEvent`` with
the same fields set, the same derived id) at a fraction of the cost, for the events producers
actually send: a typed msgspec decode (C) plus the few checks msgspec cannot express. It is a
*subset* decoder: anything it is not sure about (a refusal of any kind, ``units``,
``provider_cost_usd``, no ``event_time``, text that pydantic would strip or lower-case, non-ASCII
where Python and pydantic-core's Rust could disagree) goes to ``parse_event``, so every
validation rule and every dead-letter reason stays pydantic's, byte for byte.

Equality with ``parse_event`` is checked on generated corpora of good and bad events
(``tests/test_decode_fast.py``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from itertools import compress, repeat
from operator import is_not
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType
from msgspec.structs import astuple

from spendstream.events import (
    MAX_EVENT_BYTES,
    MAX_EVENT_TIME,
    MAX_TAG_KEY_CHARS,
    MAX_TAG_VALUE_CHARS,
    MAX_TAGS,
    MIN_EVENT_TIME,
    RFC3339,
    TAG_KEY_PATTERN,
    UsageEvent,
    parse_event,
    with_event_id,
)

# Each text rule as a pattern for re.fullmatch (`$` would also match before a final newline,
# which pydantic-core's Rust regex does not). Text pydantic strips (and lower-cases) passes only
# when there is nothing to strip or lower: first and last characters not whitespace for Python
# (a superset of Rust's), ASCII without capitals where pydantic lower-cases (Python and Rust
# agree on ASCII).
_STRIPPED = r"(?s:\S(?:.*\S)?)"
_LOWER_ASCII = r"[!-@\[-~](?:[ -@\[-~]*[!-@\[-~])?"
_RULES: dict[str, tuple[re.Pattern[str], int, int]] = {
    "name": (re.compile(_STRIPPED), 1, 200),  # model, response_model
    "provider": (re.compile(_LOWER_ASCII), 1, 200),
    "finish_reason": (re.compile(_LOWER_ASCII), 1, 64),
    "placement": (re.compile(r"[a-z0-9][a-z0-9_.\-]*"), 1, 64),
    "prompt_hash": (re.compile(r"[A-Za-z0-9._:\-]+"), 8, 128),
    "tag_key": (re.compile(TAG_KEY_PATTERN.pattern[1:-1]), 1, MAX_TAG_KEY_CHARS),
}
_EVENT_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
# Texts already judged, per rule: providers, models, tag keys repeat from event to event, so
# each distinct text is matched once (bounded: cleared when it grows past the limit).
_JUDGED: dict[str, dict[str, bool]] = {rule: {} for rule in _RULES}
_JUDGED_LIMIT = 100_000
_Tokens = Annotated[int, Meta(ge=0, le=10**12)]
_Operation = Literal[
    "chat",
    "text_completion",
    "generate_content",
    "embeddings",
    "image",
    "audio",
    "moderation",
    "rerank",
    "other",
]


class _Wire(Struct, forbid_unknown_fields=True, kw_only=True):
    """The JSON shape: types, integer bounds, literals and lengths, checked by msgspec in C.
    Optional fields default to UNSET so that presence is known: pydantic's
    ``model_fields_set`` holds exactly the keys present, and events compare equal only when it
    matches. Same order as ``UsageEvent``'s fields."""

    schema_version: Literal[1] | UnsetType = UNSET
    event_id: str | UnsetType = UNSET
    event_time: str  # absent: "now", left to the reference
    provider: str
    model: str
    response_model: str | None | UnsetType = UNSET
    operation: _Operation | UnsetType = UNSET
    input_tokens: _Tokens | UnsetType = UNSET
    output_tokens: _Tokens | UnsetType = UNSET
    cache_read_tokens: _Tokens | UnsetType = UNSET
    cache_write_tokens: _Tokens | UnsetType = UNSET
    reasoning_tokens: _Tokens | UnsetType = UNSET
    request_count: Annotated[int, Meta(ge=1, le=10**6)] | UnsetType = UNSET
    batch: bool | UnsetType = UNSET
    latency_ms: Annotated[float, Meta(ge=0, le=86_400_000)] | None | UnsetType = UNSET
    status: Literal["ok", "error"] | UnsetType = UNSET
    error_type: Annotated[str, Meta(max_length=200)] | None | UnsetType = UNSET
    provider_cost_usd: None | UnsetType = UNSET  # a value (exact decimal): the reference
    tags: (
        Annotated[dict[str, Annotated[str, Meta(max_length=MAX_TAG_VALUE_CHARS)]],
                  Meta(max_length=MAX_TAGS)]
        | UnsetType
    ) = UNSET
    prompt_hash: str | None | UnsetType = UNSET
    response_cached: bool | UnsetType = UNSET
    finish_reason: str | None | UnsetType = UNSET
    max_tokens: Annotated[int, Meta(ge=1, le=10**9)] | None | UnsetType = UNSET
    units: UnsetType = UNSET  # exact decimals: left to the reference
    platform: str | None | UnsetType = UNSET
    region: str | None | UnsetType = UNSET


_DECODER = msgspec.json.Decoder(_Wire)
_FIELDS = tuple(UsageEvent.model_fields)
# The model's defaults, in its field order (tags and units, dicts, are made fresh per event;
# event_id's is a placeholder replaced by the derived id, events.with_event_id).
_DEFAULTS: dict[str, Any] = {
    "schema_version": 1,
    "event_id": "",
    "event_time": None,
    "provider": None,
    "model": None,
    "response_model": None,
    "operation": "chat",
    "input_tokens": 0,
    "output_tokens": 0,
    "cache_read_tokens": 0,
    "cache_write_tokens": 0,
    "reasoning_tokens": 0,
    "request_count": 1,
    "batch": False,
    "latency_ms": None,
    "status": "ok",
    "error_type": None,
    "provider_cost_usd": None,
    "tags": None,
    "prompt_hash": None,
    "response_cached": False,
    "finish_reason": None,
    "max_tokens": None,
    "units": None,
    "platform": None,
    "region": None,
}
if not tuple(_DEFAULTS) == _Wire.__struct_fields__ == _FIELDS:
    raise RuntimeError("stream.decode is out of step with events.UsageEvent's fields")


class _NotSure(Exception):
    """The fast path declines: the reference decoder decides."""


def decode_usage_event(payload: bytes) -> UsageEvent:
    """``events.parse_event(payload)``, faster for the common case; raises ``EventError`` with
    the reference decoder's reason."""
    if len(payload) <= MAX_EVENT_BYTES:
        try:
            return with_event_id(_fast(payload))
        except (msgspec.ValidationError, msgspec.DecodeError, _NotSure):
            pass
    return parse_event(payload)


def _fast(payload: bytes) -> UsageEvent:
    """The event, or raises when msgspec refuses it or it needs the reference's judgement."""
    wire = _DECODER.decode(payload)
    given = astuple(wire)
    present = list(map(is_not, given, repeat(UNSET)))
    values = _DEFAULTS.copy()
    values["tags"] = {}
    values["units"] = {}
    values.update(compress(zip(_FIELDS, given), present))
    if values["cache_read_tokens"] + values["cache_write_tokens"] > values["input_tokens"]:
        raise _NotSure
    if values["reasoning_tokens"] > values["output_tokens"]:
        raise _NotSure
    values["event_time"] = _event_time(wire.event_time)
    if wire.event_id is not UNSET and not _EVENT_ID.fullmatch(wire.event_id):
        raise _NotSure
    _check("provider", wire.provider)
    _check("name", wire.model)
    for rule, value in (
        ("name", wire.response_model),
        ("finish_reason", wire.finish_reason),
        ("prompt_hash", wire.prompt_hash),
        ("placement", wire.platform),
        ("placement", wire.region),
    ):
        if value is not None and value is not UNSET:
            _check(rule, value)
    for key in values["tags"]:
        _check("tag_key", key)
    return _built(values, set(compress(_FIELDS, present)))


def _event_time(text: str) -> datetime:
    """``events.parse_rfc3339``'s common case (the same regex, then ``fromisoformat``)."""
    match = RFC3339.fullmatch(text)
    if match is None or match.group(8) is None or match.group(6) == "60":
        raise _NotSure
    try:
        moment = datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):
        raise _NotSure from None
    if not MIN_EVENT_TIME <= moment < MAX_EVENT_TIME:
        raise _NotSure
    return moment


def _check(rule: str, text: str) -> None:
    judged = _JUDGED[rule]
    good = judged.get(text)
    if good is None:
        pattern, shortest, longest = _RULES[rule]
        good = shortest <= len(text) <= longest and pattern.fullmatch(text) is not None
        if len(judged) >= _JUDGED_LIMIT:
            judged.clear()
        judged[text] = good
    if not good:
        raise _NotSure


def _built(values: dict[str, Any], fields_set: set[str]) -> UsageEvent:
    """A ``UsageEvent`` from already validated values, as ``model_construct`` builds one (the
    model is frozen, so its slots are set directly)."""
    event = UsageEvent.__new__(UsageEvent)
    object.__setattr__(event, "__dict__", values)
    object.__setattr__(event, "__pydantic_fields_set__", fields_set)
    object.__setattr__(event, "__pydantic_extra__", None)
    object.__setattr__(event, "__pydantic_private__", None)
    return event
