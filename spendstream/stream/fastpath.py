"""The stream's fast decode of usage events: msgspec into a plain record, for the events the SDK
sends; anything unusual is left to :func:`spendstream.events.parse_event`.

:meth:`FastDecoder.decode` returns a :class:`PackedEvent` only for a payload it can prove
valid under every rule of :class:`~spendstream.events.UsageEvent`, with the same field values a
``UsageEvent`` parsed from it would hold. For anything else (invalid, or valid but unusual:
``units``, ``provider_cost_usd``, no ``event_id`` or ``event_time``, a string msgspec refuses) it
returns None and the processor runs ``parse_event``, so every refusal keeps its reason
byte for byte and every derived id is computed as before. ``tests/test_fastpath.py`` holds the
two paths equal on generated events and every edge value.

Why it is cheaper (docs/benchmarks-ingest.md): msgspec decodes typed fields in C without
building a pydantic model; the rules pydantic-core runs per value in Rust are checked here once
per *distinct* value where values repeat (provider, model, tag keys, placement, agent names:
cached verdicts from pydantic itself, through a ``TypeAdapter`` of the same annotated type), and
with a compiled pattern where they do not (ids, hashes).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from operator import attrgetter
from typing import Annotated, Any, get_args

import msgspec
from pydantic import TypeAdapter, ValidationError

from spendstream.event_time import parse_rfc3339
from spendstream.events import (
    MAX_ERROR_TYPE_CHARS,
    MAX_EVENT_BYTES,
    MAX_LATENCY_MS,
    MAX_MAX_TOKENS,
    MAX_REQUEST_COUNT,
    MAX_STEP,
    MAX_TAG_VALUE_CHARS,
    MAX_TAGS,
    MAX_TOKEN_COUNT,
    Customer,
    FinishReason,
    Label,
    Name,
    Operation,
    Placement,
    Provider,
    TagKey,
    UsageEvent,
)

# EventId, TraceId and PromptHash's pattern; fullmatch is at least as strict as pydantic-core's
# anchored match, and what it accepts is ASCII, so length in characters is length in bytes.
_ID_TEXT = re.compile(r"[A-Za-z0-9._:\-]+")
MAX_ID_CHARS = 128
MIN_PROMPT_HASH_CHARS = 8
OPERATIONS = frozenset(get_args(Operation))
MAX_CACHED_VALUES = 4096  # distinct values per checked field before its cache starts over
_INVALID = object()
# The fields pydantic trims or lowercases, in the order of FastDecoder._normalised's checks.
NORMALISED_FIELDS = (
    "provider",
    "model",
    "response_model",
    "finish_reason",
    "platform",
    "region",
    "agent",
    "tool",
    "customer",
)
_read_names = attrgetter(*NORMALISED_FIELDS)
_UNSEEN = object()  # _normalised's cache miss (a verdict may be None)
_NO_IDS = (None, None, None, None)  # no agent ids: the common case, one comparison
# UsageEvent's ranges, checked by msgspec in C while it decodes (a value out of range fails the
# decode: the event goes to parse_event, which words the reason as before).
Tokens = Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKEN_COUNT)]
RequestCount = Annotated[int, msgspec.Meta(ge=1, le=MAX_REQUEST_COUNT)]
LatencyMs = Annotated[float, msgspec.Meta(ge=0, le=MAX_LATENCY_MS)]
ErrorType = Annotated[str, msgspec.Meta(max_length=MAX_ERROR_TYPE_CHARS)]
MaxTokens = Annotated[int, msgspec.Meta(ge=1, le=MAX_MAX_TOKENS)]
Step = Annotated[int, msgspec.Meta(ge=1, le=MAX_STEP)]


class PackedEvent(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A usage event decoded by msgspec; after :meth:`FastDecoder.decode` its fields hold what
    ``UsageEvent`` would (``event_time`` the parsed UTC datetime), so it reads as a
    :class:`~spendstream.events.UsageRecord`."""

    provider: str
    model: str
    schema_version: int = 1
    event_id: str = ""  # absent (an id to derive) or empty: left to parse_event
    event_time: Any = msgspec.UNSET  # the wire text, replaced by the parsed moment
    response_model: str | None = None
    operation: str = "chat"
    input_tokens: Tokens = 0
    output_tokens: Tokens = 0
    cache_read_tokens: Tokens = 0
    cache_write_tokens: Tokens = 0
    reasoning_tokens: Tokens = 0
    cache_write_1h_tokens: Tokens = 0
    request_count: RequestCount = 1
    batch: bool = False
    latency_ms: LatencyMs | None = None
    status: str = "ok"
    error_type: ErrorType | None = None
    provider_cost_usd: Any = None  # anything but null: left to parse_event
    tags: dict[str, str] = {}
    prompt_hash: str | None = None
    response_cached: bool = False
    finish_reason: str | None = None
    max_tokens: MaxTokens | None = None
    units: dict[str, Any] = {}  # non-empty: left to parse_event
    platform: str | None = None
    region: str | None = None
    trace_id: str | None = None
    session_id: str | None = None
    run_id: str | None = None
    agent: str | None = None
    step: Step | None = None
    parent: str | None = None
    tool: str | None = None
    customer: str | None = None

    def tag(self, key: str) -> str:
        """The value of tag ``key``, or ``""`` when absent."""
        return self.tags.get(key, "")

    def to_json_bytes(self) -> bytes:
        """The wire form ``UsageEvent.to_json_bytes`` gives the same event (rarely needed: a
        dead letter for a row the ledger rejected)."""
        fields = {name: getattr(self, name) for name in UsageEvent.model_fields}
        return UsageEvent.model_validate(fields).to_json_bytes()


class _Verdicts:
    """pydantic's verdict on each distinct value of one annotated string type (normalised
    value, or invalid), cached: SDK traffic repeats a few providers, models and names."""

    def __init__(self, annotated: Any) -> None:
        self.adapter: TypeAdapter[str] = TypeAdapter(annotated)
        self.seen: dict[str, object] = {}

    def __call__(self, value: str) -> object:
        found = self.seen.get(value)
        if found is None:
            try:
                found = self.adapter.validate_python(value)
            except ValidationError:
                found = _INVALID
            if len(self.seen) >= MAX_CACHED_VALUES:
                self.seen.clear()
            self.seen[value] = found
        return found


def _is_id(value: str | None) -> bool:
    """An EventId/TraceId value (absent counts as valid)."""
    return value is None or (len(value) <= MAX_ID_CHARS and _ID_TEXT.fullmatch(value) is not None)


def _ids_valid(*values: str | None) -> bool:
    return all(_is_id(value) for value in values)


class FastDecoder:
    """Decodes a payload into a validated :class:`PackedEvent`, or None (see module doc)."""

    def __init__(self) -> None:
        self.decoder = msgspec.json.Decoder(PackedEvent)
        self.provider = _Verdicts(Provider)
        self.name = _Verdicts(Name)
        self.placement = _Verdicts(Placement)
        self.finish_reason = _Verdicts(FinishReason)
        self.label = _Verdicts(Label)
        self.customer = _Verdicts(Customer)
        self.tag_key = _Verdicts(TagKey)
        self.tag_keys: set[str] = set()  # tag keys judged valid
        self.names: dict[tuple[str | None, ...], tuple[Any, ...] | None] = {}  # _normalised's

    def decode(self, payload: bytes) -> PackedEvent | None:
        """The event in ``payload`` when this path can decide it alone, else None."""
        if len(payload) > MAX_EVENT_BYTES:
            return None
        try:
            event = self.decoder.decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return None
        if not (self._plain(event) and self._tags_valid(event.tags)):
            return None
        try:
            moment = parse_rfc3339(event.event_time)
        except ValueError:  # PydanticCustomError: parse_event words the reason
            return None
        names = _read_names(event)  # read once: the cache's key and the comparison below
        normalised = self._normalised(names)
        if normalised is None:
            return None
        event.event_time = moment
        if normalised != names:  # else already normalised (the common case)
            for field, value in zip(NORMALISED_FIELDS, normalised, strict=True):
                setattr(event, field, value)
        return event

    def _plain(self, event: PackedEvent) -> bool:
        """Every rule but tags, time, the normalised strings and the ranges msgspec checked
        holds; nothing is unusual."""
        hashed = event.prompt_hash
        return (
            event.schema_version == 1
            and type(event.event_time) is str
            and event.provider_cost_usd is None
            and not event.units
            and _ID_TEXT.fullmatch(event.event_id) is not None
            and len(event.event_id) <= MAX_ID_CHARS
            and event.cache_read_tokens + event.cache_write_tokens <= event.input_tokens
            and event.reasoning_tokens <= event.output_tokens
            and event.cache_write_1h_tokens <= event.cache_write_tokens
            and event.operation in OPERATIONS
            and event.status in ("ok", "error")
            and (hashed is None or (len(hashed) >= MIN_PROMPT_HASH_CHARS and _is_id(hashed)))
            and (
                (event.trace_id, event.session_id, event.run_id, event.parent) == _NO_IDS
                or _ids_valid(event.trace_id, event.session_id, event.run_id, event.parent)
            )
        )

    def _tags_valid(self, tags: dict[str, str]) -> bool:
        if len(tags) > MAX_TAGS:
            return False
        if tags and max(map(len, tags.values())) > MAX_TAG_VALUE_CHARS:
            return False
        if self.tag_keys.issuperset(tags):  # every key already judged valid
            return True
        if any(self.tag_key(key) is _INVALID for key in tags):
            return False
        if len(self.tag_keys) >= MAX_CACHED_VALUES:
            self.tag_keys.clear()
        self.tag_keys.update(tags)
        return True

    def _normalised(self, names: tuple[str | None, ...]) -> tuple[Any, ...] | None:
        """``names`` (an event's ``NORMALISED_FIELDS``) stripped/lowercased, in :meth:`decode`'s
        order; None if one is invalid. Cached per combination: SDK traffic repeats a few."""
        cached = self.names.get(names, _UNSEEN)  # one lookup: the tuple's hash is not cached
        if cached is not _UNSEEN:
            return cached  # type: ignore[return-value]  # a verdict: the values, or None
        checks: tuple[Callable[[str], object], ...] = (
            self.provider,
            self.name,
            self.name,
            self.finish_reason,
            self.placement,
            self.placement,
            self.label,
            self.label,
            self.customer,
        )
        values = tuple(
            None if value is None else check(value)
            for check, value in zip(checks, names, strict=True)
        )
        found = None if _INVALID in values else values
        if len(self.names) >= MAX_CACHED_VALUES:
            self.names.clear()
        self.names[names] = found
        return found


__all__ = ["FastDecoder", "PackedEvent"]
