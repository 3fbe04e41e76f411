"""Usage units (docs/cost-drivers.md) read from provider responses, without any provider SDK.

==============================  ===============================================================
where                           unit
==============================  ===============================================================
Anthropic usage                 ``server_tool_use.web_search_requests`` -> ``web_search_calls``
OpenAI Responses ``output``     items of type ``web_search_call`` -> ``web_search_calls``,
                                ``file_search_call`` -> ``file_search_calls``
OpenAI audio token details      ``{prompt,input,completion,output}_token(s)_details.audio_tokens``
                                -> ``audio_input_tokens`` / ``audio_output_tokens``; they are
                                taken OUT of input/output tokens (audio has its own price)
OpenAI transcription            ``usage: {type: "duration", seconds}`` -> ``audio_seconds``
OpenAI images                   ``data`` items -> ``images.SIZE.QUALITY`` (size and quality from
                                the response, or passed to :func:`image_units`); the per-image
                                price covers the image output tokens, so tokens stay 0
Gemini grounding                a candidate with ``groundingMetadata.webSearchQueries`` -> one
                                ``web_search_calls`` (billed per grounded prompt)
==============================  ===============================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any


def get(obj: Any, *names: str) -> Any:
    """The first non-None ``names`` entry of a mapping or attribute of an object, else None."""
    if obj is None:
        return None
    for name in names:
        value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _items(value: Any) -> list[Any]:
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    return []


def image_units(count: int, size: str | None = None, quality: str | None = None) -> dict[str, int]:
    """``{"images.SIZE.QUALITY": count}`` (segments left out when unknown), e.g.
    ``image_units(2, "1024x1024", "hd") == {"images.1024x1024.hd": 2}``."""
    name = ".".join(part for part in ("images", size, quality) if part and part != "auto")
    return {name: count} if count else {}


def is_images_response(source: Any) -> bool:
    """An OpenAI images response: ``data`` items with ``b64_json`` or ``url``, no ``object``."""
    data = _items(get(source, "data"))
    return (
        bool(data)
        and get(source, "object") is None
        and all(get(item, "b64_json", "url") is not None for item in data)
    )


def images_of(source: Any) -> dict[str, int]:
    """The image units of an OpenAI images response."""
    size, quality = get(source, "size"), get(source, "quality")
    return image_units(
        len(_items(get(source, "data"))),
        size if isinstance(size, str) else None,
        quality if isinstance(quality, str) else None,
    )


def tool_calls(source: Any) -> dict[str, int]:
    """Web and file search calls of an OpenAI Responses response (or its stream event)."""
    response = get(source, "response") or source
    counts: dict[str, int] = {}
    for item in _items(get(response, "output")):
        kind = get(item, "type")
        unit = {"web_search_call": "web_search_calls", "file_search_call": "file_search_calls"}
        if kind in unit:
            counts[unit[kind]] = counts.get(unit[kind], 0) + 1
    for candidate in _items(get(source, "candidates")):
        grounding = get(candidate, "groundingMetadata", "grounding_metadata")
        if _items(get(grounding, "webSearchQueries", "web_search_queries")):
            counts["web_search_calls"] = 1
    return counts


def anthropic_server_tools(usage: Any) -> dict[str, int]:
    searches = get(get(usage, "server_tool_use"), "web_search_requests")
    return {"web_search_calls": int(searches)} if searches else {}


def audio_tokens(usage: Any) -> tuple[int, int]:
    """(audio input tokens, audio output tokens) of an OpenAI usage object."""
    inputs = ("prompt_tokens_details", "input_token_details", "input_tokens_details")
    outputs = ("completion_tokens_details", "output_token_details", "output_tokens_details")
    audio_in = get(get(usage, *inputs), "audio_tokens") or 0
    audio_out = get(get(usage, *outputs), "audio_tokens") or 0
    return int(audio_in), int(audio_out)


def duration_seconds(usage: Any) -> Decimal | None:
    """Seconds of a ``{"type": "duration", "seconds": N}`` usage (whisper-1), else None."""
    if get(usage, "type") != "duration":
        return None
    seconds = get(usage, "seconds")
    return None if seconds is None else Decimal(str(seconds))
