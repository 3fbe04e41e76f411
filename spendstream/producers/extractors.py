"""Token usage from provider responses, without importing any provider SDK.

Every extractor is duck-typed: it reads plain dicts (JSON) and SDK objects (attributes) alike, in
camelCase or snake_case. Provider counts are converted to UsageEvent semantics
(see :mod:`spendstream.events`): ``input_tokens`` includes cache reads and writes,
``output_tokens`` includes reasoning.

==================  ==========================================================================
shape               conversion
==================  ==========================================================================
openai.chat         input = prompt_tokens (already includes cached), cache_read =
                    prompt_tokens_details.cached_tokens, output = completion_tokens (includes
                    reasoning), reasoning = completion_tokens_details.reasoning_tokens
openai.responses    input = input_tokens, cache_read = input_tokens_details.cached_tokens,
                    output = output_tokens, reasoning = output_tokens_details.reasoning_tokens
anthropic           cache counts are ADDITIVE: input = input_tokens + cache_creation_input_tokens
                    + cache_read_input_tokens; cache_write = cache_creation_input_tokens, of
                    which cache_write_1h = cache_creation.ephemeral_1h_input_tokens (1-hour
                    TTL, priced at the 1-hour write rate)
gemini              input = promptTokenCount (+ toolUsePromptTokenCount), cache_read =
                    cachedContentTokenCount (part of the prompt), output = candidatesTokenCount +
                    thoughtsTokenCount (thoughts are billed as output), reasoning = thoughts
bedrock             Converse: input = inputTokens + cacheReadInputTokens + cacheWriteInputTokens
==================  ==========================================================================

Finish reason (``finish_reason``, OpenTelemetry ``gen_ai.response.finish_reasons``) of the first
choice: OpenAI ``choices[0].finish_reason``, OpenAI Responses ``incomplete_details.reason``
(``max_output_tokens`` -> ``length``), Anthropic ``stop_reason``, Gemini
``candidates[0].finishReason``, Bedrock ``stopReason``; spellings are mapped by
:data:`FINISH_REASON_MAP` (a cut at the token limit is always ``length``), unknown reasons
pass through lowercased.

Platform (``platform``): an Azure OpenAI response is recognised by its ``prompt_filter_results``
(:mod:`.placement`, which also reads platform and region from SDK clients).

Usage units (images, audio, search calls; :mod:`.unit_extractors`) are filled where the response
carries them; audio tokens move from the token counts to ``audio_*_tokens`` units.

Streams: pass the list of chunks (or just the final chunk). Usage comes from the last chunk that
carries it; for Anthropic, ``message_start`` usage is combined with the final ``message_delta``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from spendstream.errors import InputError
from spendstream.producers.placement import response_placement
from spendstream.producers.unit_extractors import (
    anthropic_server_tools,
    audio_tokens,
    duration_seconds,
    get,
    images_of,
    is_images_response,
    tool_calls,
)


class UsageExtractionError(InputError, ValueError):
    """No usage could be found in the given object; the message says what was looked for."""


class ExtractedUsage(BaseModel):
    """Token counts in UsageEvent semantics, plus what was recognised."""

    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_1h_tokens: int = 0  # the 1-hour part of cache_write_tokens (Anthropic)
    response_model: str | None = None
    finish_reason: str | None = None
    shape: str
    units: dict[str, Decimal] = Field(default_factory=dict)
    platform: str | None = None  # where the response shows it was served (.placement)

    def event_fields(self) -> dict[str, Any]:
        """The fields to put on a UsageEvent (response_model, finish_reason, units and platform
        when known)."""
        optional = {"shape", "response_model", "finish_reason", "units", "platform"}
        fields = self.model_dump(exclude=optional)
        if self.platform:
            fields["platform"] = self.platform
        if self.response_model:
            fields["response_model"] = self.response_model
        if self.finish_reason:
            fields["finish_reason"] = self.finish_reason
        if self.units:
            fields["units"] = dict(self.units)
        return fields

    def with_units(self, units: Mapping[str, int | Decimal]) -> ExtractedUsage:
        """A copy with ``units`` added (summed with the units already found)."""
        if not units:
            return self
        merged = dict(self.units)
        for name, quantity in units.items():
            merged[name] = merged.get(name, Decimal(0)) + quantity
        return self.model_copy(update={"units": merged})


FINISH_REASON_MAP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "max_output_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",
    "safety": "content_filter",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
    "recitation": "content_filter",
    "blocklist": "content_filter",
    "prohibited_content": "content_filter",
}


def finish_reason(source: Any) -> str | None:
    """The first choice's finish reason of a response or stream chunk, normalised; else None."""
    for holder in (source, get(source, "message"), get(source, "delta")):
        if holder is None:
            continue
        choices = get(holder, "choices", "candidates")
        first = choices[0] if isinstance(choices, Sequence) and choices else None
        raw = get(first, "finish_reason", "finishReason") or get(
            holder, "stop_reason", "stopReason"
        )
        if raw is None:
            raw = get(get(holder, "incomplete_details"), "reason")
        if isinstance(raw, str) and raw.strip():
            text = raw.strip().lower()
            return FINISH_REASON_MAP.get(text, text)[:64]
    return None


_PROVIDER_SHAPES = {
    "openai": "openai",
    "azure": "openai",
    "azure.openai": "openai",
    "azure_openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "google": "gemini",
    "gcp.gemini": "gemini",
    "gcp.vertex_ai": "gemini",
    "vertex_ai": "gemini",
    "bedrock": "bedrock",
    "aws.bedrock": "bedrock",
}


def count(obj: Any, *names: str) -> int:
    """A token count field as an int (0 when absent)."""
    value = get(obj, *names)
    return int(value) if value is not None else 0


def extract_usage(source: Any, provider: str | None = None) -> ExtractedUsage:
    """Usage from a response, a usage object, or a stream (list of chunks).

    ``provider`` (e.g. ``"anthropic"``) decides ambiguous shapes; without it the shape is
    detected from the field names.

    Raises:
        UsageExtractionError: nothing usage-like was found.
    """
    family = _PROVIDER_SHAPES.get(provider.lower()) if provider else None
    if isinstance(source, Sequence) and not isinstance(source, str | bytes):
        return _from_stream(list(source), family)
    if is_images_response(source):  # per-image prices cover the image tokens
        model = get(source, "model")
        return ExtractedUsage(
            shape="openai.images",
            response_model=model if isinstance(model, str) else None,
        ).with_units(images_of(source))
    usage, response_model = _locate(source)
    if usage is None:
        raise UsageExtractionError(
            f"no usage found in {type(source).__name__}: expected usage, usageMetadata/"
            "usage_metadata, or a usage object"
        )
    extracted = _convert(usage, family, response_model).with_units(tool_calls(source))
    platform = response_placement(source).get("platform")
    return extracted.model_copy(
        update={"finish_reason": finish_reason(source), "platform": platform}
    )


def _locate(source: Any) -> tuple[Any, str | None]:
    """(usage object, response model) of a response, a stream event, or a bare usage object."""
    model = get(source, "model", "modelVersion", "model_version")
    for holder in (source, get(source, "message"), get(source, "response")):
        if holder is None:
            continue
        usage = get(holder, "usage", "usageMetadata", "usage_metadata")
        if usage is not None:
            model = model or get(holder, "model", "modelVersion", "model_version")
            return usage, model if isinstance(model, str) else None
    metadata = get(source, "metadata")  # Bedrock ConverseStream metadata event
    if get(metadata, "usage") is not None:
        return get(metadata, "usage"), None
    if _looks_like_usage(source):
        return source, None
    return None, None


def _looks_like_usage(obj: Any) -> bool:
    return (
        get(
            obj,
            "prompt_tokens",
            "input_tokens",
            "output_tokens",
            "inputTokens",
            "promptTokenCount",
            "prompt_token_count",
        )
        is not None
    )


def _from_stream(chunks: list[Any], family: str | None) -> ExtractedUsage:
    located = [_locate(chunk) for chunk in chunks]
    found = [(usage, model) for usage, model in located if usage is not None]
    if not found:
        raise UsageExtractionError(
            "no chunk of the stream carries usage (OpenAI needs "
            "stream_options={'include_usage': True})"
        )
    models = [model for _, model in located if model]
    model = models[-1] if models else None
    reasons = [reason for reason in map(finish_reason, chunks) if reason]
    reason = reasons[-1] if reasons else None
    platform = response_placement(chunks).get("platform")
    return _stream_usage(chunks, found, family, model).model_copy(
        update={"finish_reason": reason, "platform": platform}
    )


def _stream_usage(
    chunks: list[Any], found: list[tuple[Any, str | None]], family: str | None, model: str | None
) -> ExtractedUsage:
    units = tool_calls(next(c for c in reversed(chunks) if _locate(c)[0] is not None))
    if family == "anthropic" or any(_event_type(c) == "message_start" for c in chunks):
        merged: dict[str, Any] = {}
        for usage, _ in found:  # message_start, then message_delta(s): later non-null wins
            for name in _ANTHROPIC_FIELDS:
                value = get(usage, name)
                if value is not None:
                    merged[name] = value
        return _convert(merged, "anthropic", model).with_units(units)
    return _convert(found[-1][0], family, model).with_units(units)


def _event_type(chunk: Any) -> Any:
    return get(chunk, "type")


_ANTHROPIC_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "cache_creation",
    "server_tool_use",
)


def _convert(usage: Any, family: str | None, model: str | None) -> ExtractedUsage:
    seconds = duration_seconds(usage)
    if seconds is not None:  # whisper-1 transcription: billed per minute of audio
        return ExtractedUsage(shape="openai.audio", response_model=model).with_units(
            {"audio_seconds": seconds}
        )
    shape = _shape(usage, family)
    units: dict[str, int] = {}
    if shape in ("openai.chat", "openai.responses"):
        names = ("prompt_tokens", "completion_tokens")
        fields = _openai(usage, *(names if shape == "openai.chat" else _RESPONSES))
        audio_in, audio_out = audio_tokens(usage)  # audio has its own price: a unit
        fields["input_tokens"] -= audio_in
        fields["output_tokens"] -= audio_out
        units = {"audio_input_tokens": audio_in, "audio_output_tokens": audio_out}
    elif shape == "anthropic":
        write = count(usage, "cache_creation_input_tokens")
        read = count(usage, "cache_read_input_tokens")
        fields = {
            "input_tokens": count(usage, "input_tokens") + write + read,
            "output_tokens": count(usage, "output_tokens"),
            "cache_read_tokens": read,
            "cache_write_tokens": write,
            # a part of the writes (never more, whatever a malformed usage says)
            "cache_write_1h_tokens": min(
                write, count(get(usage, "cache_creation"), "ephemeral_1h_input_tokens")
            ),
        }
        units = anthropic_server_tools(usage)
    elif shape == "gemini":
        thoughts = count(usage, "thoughtsTokenCount", "thoughts_token_count")
        fields = {
            "input_tokens": count(usage, "promptTokenCount", "prompt_token_count")
            + count(usage, "toolUsePromptTokenCount", "tool_use_prompt_token_count"),
            "output_tokens": count(usage, "candidatesTokenCount", "candidates_token_count")
            + thoughts,
            "cache_read_tokens": count(
                usage, "cachedContentTokenCount", "cached_content_token_count"
            ),
            "reasoning_tokens": thoughts,
        }
    else:  # bedrock
        read = count(usage, "cacheReadInputTokens", "cache_read_input_tokens")
        write = count(usage, "cacheWriteInputTokens", "cache_write_input_tokens")
        fields = {
            "input_tokens": count(usage, "inputTokens", "input_tokens") + read + write,
            "output_tokens": count(usage, "outputTokens", "output_tokens"),
            "cache_read_tokens": read,
            "cache_write_tokens": write,
        }
    extracted = ExtractedUsage.model_validate(
        {"shape": shape, "response_model": model, "finish_reason": None, **fields}
    )
    return extracted.with_units({name: value for name, value in units.items() if value})


_RESPONSES = ("input_tokens", "output_tokens")


def _openai(usage: Any, input_name: str, output_name: str) -> dict[str, int]:
    return {
        "input_tokens": count(usage, input_name),
        "output_tokens": count(usage, output_name),
        "cache_read_tokens": count(get(usage, f"{input_name}_details"), "cached_tokens"),
        "reasoning_tokens": count(get(usage, f"{output_name}_details"), "reasoning_tokens"),
    }


def _shape(usage: Any, family: str | None) -> str:
    """Which conversion applies: the provider decides, field names break ties."""
    if get(usage, "prompt_tokens", "completion_tokens") is not None:
        return "openai.chat"
    if get(usage, "promptTokenCount", "prompt_token_count", "candidatesTokenCount") is not None:
        return "gemini"
    if family == "bedrock" or get(usage, "inputTokens", "cache_write_input_tokens") is not None:
        return "bedrock"
    if family == "anthropic":
        return "anthropic"
    if family == "openai":
        return "openai.responses"
    if get(usage, "cache_creation_input_tokens", "cache_read_input_tokens") is not None:
        return "anthropic"
    if get(usage, "input_tokens", "output_tokens") is not None:
        # OpenAI Responses and Anthropic share these names; without cache fields they agree.
        return "openai.responses"
    raise UsageExtractionError(f"unrecognised usage fields in {type(usage).__name__}")
