"""Usage event v1: the one message every LLM call produces.

This module is the wire contract between the producer SDK and the stream worker. Events travel as
UTF-8 JSON. Field names follow the OpenTelemetry GenAI semantic conventions where one exists
(see ``OTEL_ATTRIBUTE_NAMES``).

Token semantics (the same for every provider; extractors convert provider shapes into these):

- ``input_tokens`` counts *all* input tokens, including ``cache_read_tokens`` and
  ``cache_write_tokens`` (OpenTelemetry: "SHOULD include all types of input tokens").
- ``output_tokens`` counts *all* output tokens, including ``reasoning_tokens``.

So ``cache_read_tokens + cache_write_tokens <= input_tokens`` and
``reasoning_tokens <= output_tokens`` always hold, and the pricer never counts a token twice.
``cache_write_1h_tokens`` (Anthropic's 1-hour cache writes, priced at the 1-hour write rate) is
the part of ``cache_write_tokens`` written with a 1-hour TTL, so it never exceeds it; the rest
are 5-minute writes.

Usage units (every cost driver that is not a token; docs/cost-drivers.md): ``units`` maps a unit
name to a non-negative exact quantity, e.g. ``{"images.1024x1024.hd": 2, "audio_seconds":
"93.5"}``. A name is a base (``STANDARD_UNITS`` or a custom one) plus optional dotted variant
segments that change the rate (image size and quality, search context size). Quantities are JSON
integers or decimal strings; JSON floats are refused, since they cannot be read back exactly.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Protocol, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from spendstream.errors import InputError
from spendstream.event_time import event_time_value
from spendstream.tag_keys import MAX_TAG_KEY_CHARS, TAG_KEY_PATTERN

SCHEMA_VERSION = 1
MAX_EVENT_BYTES = 16 * 1024
MAX_TAGS = 32
MAX_TAG_VALUE_CHARS = 256
RESERVED_TAGS = ("team", "app", "env", "user", "feature")
MAX_UNITS = 16
MAX_UNIT_QUANTITY = Decimal(10**12)
UNIT_DECIMAL_PLACES = 9
# base name, then up to three variant segments: images.1024x1024.hd, web_search_calls.high
UNIT_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,47}(?:\.[a-z0-9][a-z0-9_\-]{0,31}){0,3}$"
_UNIT_QUANTITY_TEXT = re.compile(r"^[0-9]{1,13}(?:\.[0-9]{1,9})?$")
_DECIMAL_TEXT = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")
QUANTITY_RULES = (
    'a non-negative integer or a decimal string such as "93.5", with at most '
    f"{UNIT_DECIMAL_PLACES} decimal places and at most {MAX_UNIT_QUANTITY} (1e12)"
)
# Documented unit names (the catalog and the SDK extractors use these; custom names are allowed).
STANDARD_UNITS: dict[str, str] = {
    "images": "generated or edited images; variants .SIZE.QUALITY, e.g. images.1024x1024.hd",
    "audio_seconds": "seconds of audio transcribed, translated or generated",
    "audio_input_tokens": "audio tokens in the input (gpt-4o-transcribe, realtime, audio models)",
    "audio_output_tokens": "audio tokens in the output (speech, realtime, audio models)",
    "tts_characters": "characters of text turned into speech (tts-1, tts-1-hd)",
    "web_search_calls": "web-search tool calls; variant .CONTEXT_SIZE (low, medium, high)",
    "file_search_calls": "file-search tool calls",
    "code_execution_hours": "hours of code-execution container time",
    "vector_queries": "vector-store queries",
    "vector_storage_gb_days": "vector or file storage, GB x days",
    "training_tokens": "fine-tuning training tokens (tokens x epochs)",
    "gpu_hours": "hours of a dedicated or self-hosted GPU endpoint",
}
# Our field -> OpenTelemetry GenAI attribute (semantic conventions, gen_ai.* namespace).
OTEL_ATTRIBUTE_NAMES: dict[str, str] = {
    "provider": "gen_ai.provider.name",
    "model": "gen_ai.request.model",
    "response_model": "gen_ai.response.model",
    "operation": "gen_ai.operation.name",
    "input_tokens": "gen_ai.usage.input_tokens",
    "output_tokens": "gen_ai.usage.output_tokens",
    "cache_read_tokens": "gen_ai.usage.cache_read.input_tokens",
    "cache_write_tokens": "gen_ai.usage.cache_creation.input_tokens",
    "reasoning_tokens": "gen_ai.usage.reasoning.output_tokens",
    "latency_ms": "gen_ai.client.operation.duration (seconds there, milliseconds here)",
    "status": "error.type (set when status is 'error')",
    "finish_reason": "gen_ai.response.finish_reasons (the first choice's reason)",
    "max_tokens": "gen_ai.request.max_tokens",
    "session_id": "gen_ai.conversation.id",
    "agent": "gen_ai.agent.name",
    "run_id": "the invoke_agent span (otel-<trace>-<span>) the call ran under",
    "tool": "gen_ai.tool.name",
    "trace_id": "the span's trace id",
    "parent": "the span's parent span (otel-<trace>-<span>)",
    "provider_cost_usd": "gen_ai.usage.cost (provider-reported, when the span carries it)",
}
# Finish reasons as the OpenTelemetry GenAI conventions spell them; extractors map provider
# spellings onto these (anthropic "max_tokens" -> "length"), others pass through lowercased.
FINISH_REASONS = ("stop", "length", "content_filter", "tool_calls", "error")

# The numeric ranges, shared with the stream's fast decoder (stream.fastpath), which checks the
# same bounds while msgspec decodes: one definition, so the two cannot drift apart.
MAX_TOKEN_COUNT = 10**12
MAX_REQUEST_COUNT = 10**6
MAX_LATENCY_MS = 86_400_000
MAX_ERROR_TYPE_CHARS = 200
MAX_MAX_TOKENS = 10**9
MAX_STEP = 10**6
TokenCount = Annotated[int, Field(ge=0, le=MAX_TOKEN_COUNT, strict=True)]
# Constraints checked inside pydantic-core (no Python validator on the hot path).
TagKey = Annotated[
    str, StringConstraints(max_length=MAX_TAG_KEY_CHARS, pattern=TAG_KEY_PATTERN.pattern)
]
TagValue = Annotated[str, StringConstraints(max_length=MAX_TAG_VALUE_CHARS)]
Provider = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=200)
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
PromptHash = Annotated[
    str, StringConstraints(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")
]
FinishReason = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=64)
]
# Where the call was served (optional since round 3, docs/pricing.md "Platforms and regions"):
# a platform (api, azure, bedrock, vertex, ...) and a region or data zone (eu, us, eu-west-1).
Placement = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, max_length=64, pattern=r"^[A-Za-z0-9][\w.\-]*$"
    ),
]
EventId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")
]
# Agent and customer fields (optional since round 3, docs/agents.md): ids as opaque text.
TraceId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")
]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Customer = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TAG_VALUE_CHARS)
]
AGENT_FIELDS = ("trace_id", "session_id", "run_id", "agent", "step", "parent", "tool", "customer")
Operation = Literal[
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


def _unit_quantity(value: object) -> Decimal:
    """A unit quantity as an exact Decimal: an int, a Decimal or a decimal string; never a float
    (a JSON float is already rounded to binary before we see it, so it cannot be exact)."""
    if type(value) is int:
        return Decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise PydanticCustomError("unit_quantity", "must be a finite number")
        return value
    if isinstance(value, str) and _UNIT_QUANTITY_TEXT.match(value):
        return Decimal(value)
    if isinstance(value, str) and _DECIMAL_TEXT.match(value):
        raise PydanticCustomError("unit_quantity", _quantity_rule(value))
    if isinstance(value, float):
        raise PydanticCustomError(
            "unit_quantity",
            'fractional quantities must be decimal strings, e.g. "93.5" (a JSON float is '
            "not exact)",
        )
    raise PydanticCustomError("unit_quantity", f"must be {QUANTITY_RULES}")


def _quantity_rule(text: str) -> str:
    """Which rule a well-formed decimal string breaks (the pattern bounds both at once)."""
    places = len(text.partition(".")[2])
    if places > UNIT_DECIMAL_PLACES:
        return (
            f"has {places} decimal places; at most {UNIT_DECIMAL_PLACES} are allowed "
            "(round it, or drop trailing zeros)"
        )
    return f"is over the largest quantity, {MAX_UNIT_QUANTITY} (1e12)"


UnitName = Annotated[str, StringConstraints(max_length=150, pattern=UNIT_NAME_PATTERN)]
UnitQuantity = Annotated[
    Decimal,
    BeforeValidator(_unit_quantity),
    Field(ge=0, le=MAX_UNIT_QUANTITY, decimal_places=UNIT_DECIMAL_PLACES),
]


class EventError(InputError, ValueError):
    """An event payload that cannot be accepted; ``reason`` says precisely why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UsageEvent(BaseModel):
    """One LLM call's usage. Immutable; ``event_id`` is the idempotency key.

    Re-sending an event must re-send it unchanged: the ledger keeps one row per ``event_id``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    event_id: EventId = Field(default_factory=lambda: uuid.uuid4().hex)
    event_time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    provider: Provider
    model: Name
    response_model: Name | None = None
    operation: Operation = "chat"
    input_tokens: TokenCount = 0
    output_tokens: TokenCount = 0
    cache_read_tokens: TokenCount = 0
    cache_write_tokens: TokenCount = 0
    reasoning_tokens: TokenCount = 0
    # Optional since session 13: the 1-hour part of cache_write_tokens (absent: 0, as before).
    cache_write_1h_tokens: TokenCount = 0
    request_count: Annotated[int, Field(ge=1, le=MAX_REQUEST_COUNT, strict=True)] = 1
    batch: Annotated[bool, Strict()] = False
    latency_ms: Annotated[float, Field(ge=0, le=MAX_LATENCY_MS, strict=True)] | None = None
    status: Literal["ok", "error"] = "ok"
    error_type: Annotated[str, StringConstraints(max_length=MAX_ERROR_TYPE_CHARS)] | None = None
    provider_cost_usd: Annotated[Decimal, Field(ge=0, max_digits=38, decimal_places=18)] | None = (
        None
    )
    tags: Annotated[dict[TagKey, TagValue], Field(max_length=MAX_TAGS)] = Field(
        default_factory=dict
    )
    # Optional since round 2 (docs/insights.md); absent fields keep v1 events and their
    # derived ids unchanged. The prompt text itself never travels: only its hash.
    prompt_hash: PromptHash | None = None
    response_cached: Annotated[bool, Strict()] = False
    finish_reason: FinishReason | None = None
    max_tokens: Annotated[int, Field(ge=1, le=MAX_MAX_TOKENS, strict=True)] | None = None
    units: Annotated[dict[UnitName, UnitQuantity], Field(max_length=MAX_UNITS)] = Field(
        default_factory=dict
    )
    # Optional since round 3: where the call was served, when the model id does not say it.
    platform: Placement | None = None
    region: Placement | None = None
    # Optional since round 3 (docs/agents.md): which trace, conversation, agent run and step
    # this call belongs to, the tool it ran (tool calls priced as units) and the customer served.
    trace_id: TraceId | None = None
    session_id: TraceId | None = None
    run_id: TraceId | None = None
    agent: Label | None = None
    step: Annotated[int, Field(ge=1, le=MAX_STEP, strict=True)] | None = None
    parent: TraceId | None = None
    tool: Label | None = None
    customer: Customer | None = None

    @field_validator("schema_version", mode="before")
    @classmethod
    def _exactly_one(cls, value: object) -> object:
        if type(value) is not int:  # JSON true and 1.0 would otherwise pass as 1
            raise PydanticCustomError("literal_error", "Input should be the integer 1")
        return value

    @field_validator("event_time", mode="before")
    @classmethod
    def _event_time(cls, value: object, info: ValidationInfo) -> datetime:
        return event_time_value(value, info)

    @model_validator(mode="after")
    def _check_token_subsets(self) -> UsageEvent:
        if self.cache_read_tokens + self.cache_write_tokens > self.input_tokens:
            raise ValueError(
                "cache_read_tokens + cache_write_tokens exceed input_tokens "
                "(input_tokens must include cached tokens)"
            )
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError(
                "reasoning_tokens exceed output_tokens (output_tokens must include reasoning)"
            )
        if self.cache_write_1h_tokens > self.cache_write_tokens:
            raise ValueError(
                "cache_write_1h_tokens exceed cache_write_tokens (cache_write_tokens must "
                "include the 1-hour writes)"
            )
        return self

    def tag(self, key: str) -> str:
        """The value of tag ``key``, or ``""`` when absent."""
        return self.tags.get(key, "")

    def to_json_bytes(self) -> bytes:
        """Serialize for the wire (compact UTF-8 JSON). ``units`` only when there are some, so
        token-only events stay readable by workers that predate units. An event given an
        ``event_id`` but no ``event_time`` travels without one: the worker gives every copy of
        that id the time of its first (docs/event-format.md); stamping it here, on the way,
        would make each re-send a new time, hence a new ledger row."""
        exclude: set[str] = set() if self.units else {"units"}
        if not self.cache_write_1h_tokens:  # the same: readable by workers that predate it
            exclude.add("cache_write_1h_tokens")
        if "event_time" not in self.model_fields_set and "event_id" in self.model_fields_set:
            exclude.add("event_time")
        return self.model_dump_json(exclude_none=True, exclude=exclude or None).encode()


class UsageRecord(Protocol):
    """What the worker reads of a validated usage event: a :class:`UsageEvent`, or the stream's
    fast-path record of one (``stream.fastpath.PackedEvent``), whose fields hold the same values
    a :class:`UsageEvent` parsed from the same payload would."""

    @property
    def event_id(self) -> str: ...
    @property
    def event_time(self) -> datetime: ...
    @property
    def provider(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def response_model(self) -> str | None: ...
    @property
    def operation(self) -> str: ...
    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def cache_read_tokens(self) -> int: ...
    @property
    def cache_write_tokens(self) -> int: ...
    @property
    def reasoning_tokens(self) -> int: ...
    @property
    def cache_write_1h_tokens(self) -> int: ...
    @property
    def request_count(self) -> int: ...
    @property
    def batch(self) -> bool: ...
    @property
    def latency_ms(self) -> float | None: ...
    @property
    def status(self) -> str: ...
    @property
    def error_type(self) -> str | None: ...
    @property
    def provider_cost_usd(self) -> Decimal | None: ...
    @property
    def tags(self) -> dict[str, str]: ...
    @property
    def prompt_hash(self) -> str | None: ...
    @property
    def response_cached(self) -> bool: ...
    @property
    def finish_reason(self) -> str | None: ...
    @property
    def max_tokens(self) -> int | None: ...
    @property
    def units(self) -> dict[str, Decimal]: ...
    @property
    def platform(self) -> str | None: ...
    @property
    def region(self) -> str | None: ...
    @property
    def trace_id(self) -> str | None: ...
    @property
    def session_id(self) -> str | None: ...
    @property
    def run_id(self) -> str | None: ...
    @property
    def agent(self) -> str | None: ...
    @property
    def step(self) -> int | None: ...
    @property
    def parent(self) -> str | None: ...
    @property
    def tool(self) -> str | None: ...
    @property
    def customer(self) -> str | None: ...

    def tag(self, key: str) -> str: ...

    def to_json_bytes(self) -> bytes: ...


def parse_event(payload: bytes, stamp_new: bool = False) -> UsageEvent:
    """Decode and validate one wire payload.

    An event without ``event_id`` gets :func:`derived_event_id` (so a re-sent copy is the same
    event); it must then carry ``event_time``, or a re-send would be a different event. With
    ``stamp_new`` (an event at its source, as the SDK's ``record()`` sees it) an event with
    neither gets a new id and the current time instead.

    Raises:
        EventError: with a precise, human-readable reason (size, JSON, or field errors).
    """
    if len(payload) > MAX_EVENT_BYTES:
        raise EventError(f"payload is {len(payload)} bytes; the limit is {MAX_EVENT_BYTES}")
    try:
        event = UsageEvent.model_validate_json(payload)
    except ValidationError as exc:
        raise EventError(describe_validation_error(exc)) from None
    return with_event_id(event, stamp_new)


AnyEvent = TypeVar("AnyEvent", bound=BaseModel)


def with_event_id(event: AnyEvent, stamp_new: bool = False) -> AnyEvent:
    """``event`` as parsed when it carried ``event_id``, else with :func:`derived_event_id`
    (raises :class:`EventError` when it carries neither ``event_id`` nor ``event_time``, unless
    ``stamp_new``: see :func:`parse_event`)."""
    if "event_id" in event.model_fields_set:
        return event
    if "event_time" not in event.model_fields_set:
        if stamp_new:  # the defaults: a fresh uuid and now
            return event
        raise EventError(
            "event_id: required when event_time is absent (set event_id, or event_time so an "
            "id can be derived from the event)"
        )
    return event.model_copy(update={"event_id": derived_event_id(event)})


def derived_event_id(event: BaseModel) -> str:
    """32 hex digits of SHA-256 over the event's canonical form: every field except
    ``event_id`` whose value differs from its default, as sorted-key compact JSON with UTF-8
    text, ``event_time`` in UTC with microseconds (``2026-11-28T10:00:00.000000Z``) and
    decimals without trailing zeros. Equal events give equal ids however they were spelled
    (key order, spacing, offsets, ``"batch": false`` or absent); fields added to the schema
    later with a default leave existing ids unchanged."""
    canonical: dict[str, Any] = {}
    for name, info in type(event).model_fields.items():
        value = getattr(event, name)
        if name == "event_id" or (
            name != "event_time" and value == info.get_default(call_default_factory=True)
        ):
            continue
        if isinstance(value, datetime):
            value = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        elif isinstance(value, Decimal):
            value = format(value.normalize(), "f")
        elif name == "units":
            value = {unit: format(amount.normalize(), "f") for unit, amount in value.items()}
        canonical[name] = value
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def describe_validation_error(exc: ValidationError) -> str:
    """Pydantic errors as ``field: message`` pairs joined by ``; ``."""
    parts = []
    for error in exc.errors(include_url=False):
        location = ".".join(str(item) for item in error["loc"]) or "payload"
        message = error["msg"]
        if error["type"] == "json_invalid":
            message = f"not valid JSON ({error.get('ctx', {}).get('error', message)})"
        elif error["type"] == "model_type":
            message = "expected a JSON object"
        parts.append(f"{location}: {message}")
    return "; ".join(parts)


def event_from_dict(data: dict[str, Any]) -> UsageEvent:
    """Validate a Python dict (JSON types) as an event; raises :class:`EventError`."""
    try:
        return UsageEvent.model_validate(data)
    except ValidationError as exc:
        raise EventError(describe_validation_error(exc)) from None


class OutcomeEvent(BaseModel):
    """A business outcome an app reached (``ticket_resolved``, ``conversion``): the "value" side
    of cost per outcome. Travels on its own topic (``kafka.outcome_topic``); ``schema`` marks it
    so it can never be mistaken for a usage event. ``value`` is a count or an amount (default 1);
    tags are the usage events' (team, app, feature, ...). ``event_id`` is the idempotency key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_: Literal["outcome/v1"] = Field(default="outcome/v1", alias="schema")
    event_id: EventId = Field(default_factory=lambda: uuid.uuid4().hex)
    event_time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    name: Annotated[
        str, StringConstraints(min_length=1, max_length=64, pattern=TAG_KEY_PATTERN.pattern)
    ]
    value: Annotated[Decimal, Field(ge=0, le=10**15, max_digits=38, decimal_places=18)] = Decimal(1)
    tags: Annotated[dict[TagKey, TagValue], Field(max_length=MAX_TAGS)] = Field(
        default_factory=dict
    )

    @field_validator("event_time", mode="before")
    @classmethod
    def _event_time(cls, value: object, info: ValidationInfo) -> datetime:
        return event_time_value(value, info)

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


def parse_outcome(payload: bytes) -> OutcomeEvent:
    """Decode and validate one outcome payload; raises :class:`EventError` with the reason.
    Without ``event_id`` its id is derived as for usage events (a re-sent copy, or a replay
    after a crash, is the same outcome, stored once)."""
    if len(payload) > MAX_EVENT_BYTES:
        raise EventError(f"payload is {len(payload)} bytes; the limit is {MAX_EVENT_BYTES}")
    try:
        event = OutcomeEvent.model_validate_json(payload)
    except ValidationError as exc:
        raise EventError(describe_validation_error(exc)) from None
    return with_event_id(event)
