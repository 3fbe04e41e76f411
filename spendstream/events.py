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
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = 1
MAX_EVENT_BYTES = 16 * 1024
MAX_TAGS = 32
MAX_TAG_KEY_CHARS = 64
MAX_TAG_VALUE_CHARS = 256
RESERVED_TAGS = ("team", "app", "env", "user", "feature")
TAG_KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_.\-]*$")

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
}

TokenCount = Annotated[int, Field(ge=0, le=10**12, strict=True)]
# Constraints checked inside pydantic-core (no Python validator on the hot path).
TagKey = Annotated[
    str, StringConstraints(max_length=MAX_TAG_KEY_CHARS, pattern=TAG_KEY_PATTERN.pattern)
]
TagValue = Annotated[str, StringConstraints(max_length=MAX_TAG_VALUE_CHARS)]
Provider = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=200)
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
EventId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")
]
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


class EventError(ValueError):
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
    event_time: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    provider: Provider
    model: Name
    response_model: Name | None = None
    operation: Operation = "chat"
    input_tokens: TokenCount = 0
    output_tokens: TokenCount = 0
    cache_read_tokens: TokenCount = 0
    cache_write_tokens: TokenCount = 0
    reasoning_tokens: TokenCount = 0
    request_count: Annotated[int, Field(ge=1, le=10**6, strict=True)] = 1
    batch: bool = False
    latency_ms: Annotated[float, Field(ge=0, le=86_400_000)] | None = None
    status: Literal["ok", "error"] = "ok"
    error_type: Annotated[str, StringConstraints(max_length=200)] | None = None
    provider_cost_usd: Annotated[Decimal, Field(ge=0, max_digits=38, decimal_places=18)] | None = (
        None
    )
    tags: Annotated[dict[TagKey, TagValue], Field(max_length=MAX_TAGS)] = Field(
        default_factory=dict
    )

    @field_validator("event_time")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

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
        return self

    def tag(self, key: str) -> str:
        """The value of tag ``key``, or ``""`` when absent."""
        return self.tags.get(key, "")

    def to_json_bytes(self) -> bytes:
        """Serialize for the wire (compact UTF-8 JSON)."""
        return self.model_dump_json(exclude_none=True).encode()


def parse_event(payload: bytes) -> UsageEvent:
    """Decode and validate one wire payload.

    Raises:
        EventError: with a precise, human-readable reason (size, JSON, or field errors).
    """
    if len(payload) > MAX_EVENT_BYTES:
        raise EventError(f"payload is {len(payload)} bytes; the limit is {MAX_EVENT_BYTES}")
    try:
        return UsageEvent.model_validate_json(payload)
    except ValidationError as exc:
        raise EventError(describe_validation_error(exc)) from None


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


def decimal_text(value: Decimal) -> str:
    """An exact Decimal as plain text, as amounts travel in JSON and print in the CLI: no
    exponent, no trailing zeros (``0E-18`` -> ``0``, ``6.866338000`` -> ``6.866338``)."""
    if not value.is_finite():
        return str(value)
    text = format(value.normalize(), "f")
    return "0" if text == "-0" else text
