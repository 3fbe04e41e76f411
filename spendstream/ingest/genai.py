"""GenAI spans to usage events: the pure conversion behind the OTLP span consumer.

A span is a *GenAI span* when it carries ``gen_ai.operation.name``, ``gen_ai.provider.name``, the
legacy ``gen_ai.system``, or any ``gen_ai.usage.*`` attribute; every other span is ignored.
Spans of operations that are not model calls (``invoke_agent``, ``create_agent``,
``execute_tool``, ``invoke_workflow``) are ignored too: an agent span's usage, when present,
sums its child model calls, and counting both would double the spend.

Mapping (OpenTelemetry GenAI semantic conventions → :class:`~spendstream.events.UsageEvent`):

====================================================  ===========================================
span                                                  event
====================================================  ===========================================
trace id + span id                                    ``event_id = "otel-<trace>-<span>"`` (a
                                                      re-exported span replaces, never adds)
``gen_ai.provider.name`` (else ``gen_ai.system``)     ``provider`` (OTel's ``aws.bedrock``,
                                                      ``azure.ai.openai``, ... stored as our
                                                      ``bedrock``, ``azure``, ...:
                                                      ``pricing.normalize.OTEL_PROVIDER_NAMES``)
``gen_ai.request.model`` (else response model)        ``model``
``gen_ai.response.model``                             ``response_model``
``gen_ai.operation.name``                             ``operation`` (``embedding`` and
                                                      ``completion`` spellings accepted)
``gen_ai.usage.input_tokens`` / ``prompt_tokens``     ``input_tokens`` (includes cached tokens)
``gen_ai.usage.output_tokens`` / ``completion_tokens``  ``output_tokens`` (includes reasoning)
``gen_ai.usage.cache_read.input_tokens``              ``cache_read_tokens``
``gen_ai.usage.cache_write.input_tokens`` (2026;     ``cache_write_tokens``
before: ``cache_creation.input_tokens``)
``gen_ai.usage.reasoning.output_tokens``              ``reasoning_tokens``
(every spelling in ``TOKEN_ATTRIBUTES``)
audio subsets (``AUDIO_ATTRIBUTES``)                  units ``audio_input_tokens`` /
                                                      ``audio_output_tokens``, taken out of
                                                      input/output tokens (as the SDK does)
``gen_ai.usage.cost`` (or the sum of ``.cost.*``)     ``provider_cost_usd`` (the provider's
                                                      figure; our price is still computed)
``invoke_agent`` ancestor, conversation, agent,       ``run_id``, ``session_id``, ``agent``,
tool, parent span                                     ``tool``, ``parent``, ``step``,
                                                      ``trace_id`` (:mod:`.genai_agents`)
end time; end − start                                 ``event_time``; ``latency_ms``
status ERROR or ``error.type``                        ``status="error"``, ``error_type``
resource, then span attributes, via ``tags`` mapping  ``tags`` (span attributes win)
====================================================  ===========================================

A GenAI span that cannot become a valid event (no model, no provider, a token count that is not
a non-negative integer, a successful call without any token count, cached tokens above input
tokens, ...) is *rejected* with a precise reason; the caller dead-letters it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from spendstream.events import EventError, UsageEvent, event_from_dict
from spendstream.ingest.genai_agents import SpanTree, span_event_id
from spendstream.ingest.otlp import STATUS_ERROR, Encoding, SpanRecord, decode_spans
from spendstream.pricing.normalize import stored_provider

GENAI_MARKERS = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.system")
NOT_MODEL_CALLS = frozenset({"invoke_agent", "create_agent", "execute_tool", "invoke_workflow"})
OPERATIONS = {
    "chat": "chat",
    "text_completion": "text_completion",
    "completion": "text_completion",
    "generate_content": "generate_content",
    "embeddings": "embeddings",
    "embedding": "embeddings",
    "image": "image",
    "audio": "audio",
    "moderation": "moderation",
    "rerank": "rerank",
}
# Event field -> attribute names, preferred first (current convention, then older spellings and
# those of other instrumentations: OpenLLMetry, OpenInference-style flattened usage details).
TOKEN_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
    "cache_read_tokens": (
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
        "gen_ai.usage.cached_input_tokens",
        "gen_ai.usage.input_tokens.cached",
        "gen_ai.usage.prompt_tokens_details.cached_tokens",
    ),
    # Renamed cache_creation -> cache_write in 2026 (semantic-conventions-genai#440); spans from
    # instrumentations on either side of the rename arrive, and a lost write premium under-prices.
    "cache_write_tokens": (
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_write_input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
    ),
    "reasoning_tokens": (
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.usage.reasoning_tokens",
        "gen_ai.usage.output_tokens.reasoning",
        "gen_ai.usage.completion_tokens_details.reasoning_tokens",
    ),
}
# Modality subsets. Audio has its own price: like the SDK's extractors, its tokens leave
# input/output and become the units audio_input_tokens / audio_output_tokens. Text and image
# subsets are priced as the input/output they belong to: accepted, nothing to move.
AUDIO_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "audio_input_tokens": (
        "gen_ai.usage.audio.input_tokens",
        "gen_ai.usage.input_tokens.audio",
        "gen_ai.usage.audio_input_tokens",
        "gen_ai.usage.prompt_tokens_details.audio_tokens",
    ),
    "audio_output_tokens": (
        "gen_ai.usage.audio.output_tokens",
        "gen_ai.usage.output_tokens.audio",
        "gen_ai.usage.audio_output_tokens",
        "gen_ai.usage.completion_tokens_details.audio_tokens",
    ),
}
AUDIO_OF = {"audio_input_tokens": "input_tokens", "audio_output_tokens": "output_tokens"}
# The provider-reported cost of the call in USD (kept as provider_cost_usd, never as our price):
# the total when given, else the sum of its parts (gen_ai.usage.cost.input, .output, ...).
COST_TOTALS = ("gen_ai.usage.cost", "gen_ai.usage.cost.total", "gen_ai.usage.cost.usd")
COST_PREFIX = "gen_ai.usage.cost."


@dataclass(frozen=True, slots=True)
class RejectedSpan:
    """A GenAI span that could not become an event, and why."""

    span: SpanRecord
    reason: str


@dataclass
class Conversion:
    """What one exported record held: events, rejected GenAI spans, and counts."""

    events: list[UsageEvent] = field(default_factory=list)
    rejected: list[RejectedSpan] = field(default_factory=list)
    spans: int = 0
    ignored: int = 0


class SpanConverter:
    """Turns OTLP trace exports into usage events (pure; safe to share between threads).

    ``tags`` maps attribute names (resource or span) to tag keys; ``tag_prefix`` additionally
    turns attributes named ``prefix + key`` into tag ``key``.
    """

    def __init__(
        self,
        tags: Mapping[str, str],
        tag_prefix: str | None = "spendstream.tag.",
        encoding: Encoding = "auto",
    ) -> None:
        self.tags = dict(tags)
        self.tag_prefix = tag_prefix or None
        self.encoding = encoding

    def convert(self, payload: bytes) -> Conversion:
        """Convert one Kafka record; raises :class:`~.otlp.OtlpDecodeError` if it is not OTLP."""
        return self.convert_spans(decode_spans(payload, self.encoding))

    def convert_spans(self, spans: Iterable[SpanRecord]) -> Conversion:
        result = Conversion()
        every = list(spans)
        tree = SpanTree(every)  # runs, sessions and steps: spendstream.ingest.genai_agents
        for span in every:
            result.spans += 1
            if span.problem:
                result.rejected.append(RejectedSpan(span, span.problem))
                continue
            if not is_model_call(span.attributes):
                result.ignored += 1
                continue
            try:
                result.events.append(self.to_event(span, tree))
            except EventError as exc:
                result.rejected.append(RejectedSpan(span, exc.reason))
            except Exception as exc:  # a bad span is dead-lettered alone, the others convert
                reason = f"could not convert the span ({type(exc).__name__}: {exc})"
                result.rejected.append(RejectedSpan(span, reason[:500]))
        return result

    def to_event(self, span: SpanRecord, tree: SpanTree | None = None) -> UsageEvent:
        """The usage event of one GenAI span (its run, session and step from ``tree``, the
        export it came in); raises :class:`EventError` with the reason."""
        attributes = span.attributes
        if not span.trace_id or not span.span_id:
            raise EventError("span has no trace id or span id (needed for the event id)")
        provider = _text(attributes, "gen_ai.provider.name") or _text(attributes, "gen_ai.system")
        if not provider:
            raise EventError("GenAI span has neither gen_ai.provider.name nor gen_ai.system")
        response_model = _text(attributes, "gen_ai.response.model")
        model = _text(attributes, "gen_ai.request.model") or response_model
        if not model:
            raise EventError(
                "GenAI span has neither gen_ai.request.model nor gen_ai.response.model"
            )
        operation_name = _text(attributes, "gen_ai.operation.name") or "chat"
        fields: dict[str, Any] = {
            "event_id": span_event_id(span.trace_id, span.span_id),
            "event_time": span_time(span.end_ns or span.start_ns),
            "provider": stored_provider(provider),
            "model": model,
            "operation": OPERATIONS.get(operation_name, "other"),
            "tags": self._tags(span),
        }
        if response_model:
            fields["response_model"] = response_model
        if span.end_ns >= span.start_ns > 0:
            fields["latency_ms"] = (span.end_ns - span.start_ns) / 1e6
        error_type = _text(attributes, "error.type")
        if span.status_code == STATUS_ERROR or error_type:
            fields["status"] = "error"
            fields["error_type"] = (error_type or span.status_message or "error")[:200]
        found = _tokens(attributes, fields)
        if not found and fields.get("status") != "error":
            raise EventError(
                "GenAI span of a successful call has no token counts "
                "(gen_ai.usage.input_tokens / gen_ai.usage.output_tokens)"
            )
        _audio(attributes, fields)
        cost = provider_cost(attributes)
        if cost is not None:
            fields["provider_cost_usd"] = cost
        for name, value in (tree or SpanTree([span])).fields(span).items():
            fields[name] = fit_field(name, value)
        return event_from_dict(fields)

    def _tags(self, span: SpanRecord) -> dict[str, str]:
        tags: dict[str, str] = {}
        prefix = self.tag_prefix
        for attributes in (span.resource, span.attributes):  # span attributes win
            for name, value in attributes.items():
                key = self.tags.get(name)
                if key is None and prefix and name.startswith(prefix):
                    key = name[len(prefix) :]
                if key and isinstance(value, str | int | float | bool) and value != "":
                    tags[key] = str(value)
        return tags


def is_model_call(attributes: Mapping[str, Any]) -> bool:
    """Whether a span's attributes describe a GenAI model call (see the module docstring)."""
    if attributes.get("gen_ai.operation.name") in NOT_MODEL_CALLS:
        return False
    return any(marker in attributes for marker in GENAI_MARKERS) or any(
        name.startswith("gen_ai.usage.") for name in attributes
    )


def _text(attributes: Mapping[str, Any], name: str) -> str:
    value = attributes.get(name)
    return value.strip() if isinstance(value, str) else ""


def _count(attributes: Mapping[str, Any], names: tuple[str, ...]) -> int | None:
    """The first of ``names`` present, as a non-negative integer; raises on a bad value."""
    for name in names:
        if name not in attributes:
            continue
        value = attributes[name]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise EventError(f"{name} = {value!r} is not a non-negative integer")
        return value
    return None


def span_time(unix_ns: int) -> datetime:
    """A span's end (or start) time; EventError when it is no time (``99999999999999999999999``
    ns overflows a datetime)."""
    try:
        return datetime.fromtimestamp(unix_ns / 1e9, UTC)
    except (ValueError, OverflowError, OSError):
        raise EventError(
            f"endTimeUnixNano = {str(unix_ns)[:30]} is not a time (Unix nanoseconds expected)"
        ) from None


def _tokens(attributes: Mapping[str, Any], fields: dict[str, Any]) -> bool:
    """Copy token counts into ``fields``; True when any was present. Raises on bad values."""
    found = False
    for field_name, names in TOKEN_ATTRIBUTES.items():
        value = _count(attributes, names)
        if value is not None:
            fields[field_name] = value
            found = True
    return found


def _audio(attributes: Mapping[str, Any], fields: dict[str, Any]) -> None:
    """Move audio token subsets out of input/output tokens into their units."""
    units: dict[str, int] = {}
    for unit, names in AUDIO_ATTRIBUTES.items():
        value = _count(attributes, names)
        if not value:
            continue
        total = AUDIO_OF[unit]
        if value > fields.get(total, 0):
            raise EventError(f"{names[0]} = {value} exceeds gen_ai.usage.{total} (a subset)")
        fields[total] = fields.get(total, 0) - value
        units[unit] = value
    if units:
        fields["units"] = units


def provider_cost(attributes: Mapping[str, Any]) -> Decimal | None:
    """The provider-reported USD cost of the call: the total when given, else the sum of its
    parts; None when the span carries none. Raises on a value that is not a number >= 0."""
    named = [name for name in COST_TOTALS if name in attributes]
    if not named:
        named = [name for name in attributes if name.startswith(COST_PREFIX)]
        if not named:
            return None
    else:
        named = named[:1]
    total = Decimal(0)
    for name in named:
        value = attributes[name]
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise EventError(f"{name} = {value!r} is not a cost in USD")
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise EventError(f"{name} = {value!r} is not a cost in USD") from None
        if not amount.is_finite() or amount < 0:
            raise EventError(f"{name} = {value!r} is not a cost in USD")
        total += amount
    return total.quantize(Decimal("1e-18"))  # the event keeps 18 places (floats carry more)


_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._:\-]")
_FIELD_LIMITS = {"agent": 200, "tool": 200, "customer": 256}


def fit_field(name: str, value: Any) -> Any:
    """An agent field from a span as the event accepts it, so a call is never dead-lettered
    for the spelling of its conversation id: other characters in ids become ``_``, text is cut
    to its length limit."""
    if not isinstance(value, str):
        return value
    if name in _FIELD_LIMITS:
        return value[: _FIELD_LIMITS[name]]
    return _ID_UNSAFE.sub("_", value)[:128]


__all__ = ["Conversion", "RejectedSpan", "SpanConverter", "is_model_call"]
