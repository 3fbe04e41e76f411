"""A LiteLLM proxy callback: every proxied call becomes a spendstream usage event.

Two lines in the proxy's ``config.yaml`` (and ``pip install spendstream`` next to the proxy)::

    litellm_settings:
      callbacks: spendstream.producers.litellm_callback.proxy_handler

The handler records each call through the SDK :class:`~spendstream.producers.Recorder`
(non-blocking, spooled to disk while Kafka is unreachable), configured from
``$SPENDSTREAM_CONFIG`` (or ``./spendstream.toml``) and ``SPENDSTREAM_*`` variables on first use.
Build your own with ``SpendstreamCallback(recorder)`` for other settings.

What is recorded, from LiteLLM's standard logging payload:

=================================================  ==========================================
LiteLLM                                            event
=================================================  ==========================================
``id`` (the call id)                               ``event_id = "litellm-<id>"`` (a callback
                                                   run twice for one call counts once)
``custom_llm_provider``, ``model``                 ``provider``, ``model``
``call_type``                                      ``operation`` (completion → chat, ...)
response usage (OpenAI format, as LiteLLM           tokens, including cached
normalises every provider)                         (``prompt_tokens_details.cached_tokens``),
                                                   cache writes and reasoning
``startTime``/``endTime``                          ``latency_ms``, ``event_time``
failure                                            ``status="error"``, ``error_type``
metadata ``user_api_key_team_alias`` (else id)     tag ``team``
metadata ``user_api_key_alias``                    tag ``key_alias``
``end_user`` (else ``user_api_key_user_id``)       tag ``user``
``model_group`` (the proxy's model name)           tag ``model_group``
request tags ``"key:value"`` / ``"word"``          tag ``key`` = ``value`` / tag
                                                   ``request_tags`` (sorted, comma-joined)
=================================================  ==========================================

LiteLLM is imported only here: the rest of the SDK does not need it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from spendstream.config import load_settings
from spendstream.events import TAG_KEY_PATTERN
from spendstream.producers.extractors import get
from spendstream.producers.recorder import Recorder

OPERATIONS = {
    "completion": "chat",
    "acompletion": "chat",
    "responses": "chat",
    "aresponses": "chat",
    "text_completion": "text_completion",
    "atext_completion": "text_completion",
    "embedding": "embeddings",
    "aembedding": "embeddings",
    "image_generation": "image",
    "aimage_generation": "image",
    "transcription": "audio",
    "atranscription": "audio",
    "speech": "audio",
    "aspeech": "audio",
    "moderation": "moderation",
    "amoderation": "moderation",
    "rerank": "rerank",
    "arerank": "rerank",
}
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9._:\-]")


class SpendstreamCallback(CustomLogger):
    """LiteLLM ``CustomLogger`` recording each call through a :class:`Recorder`.

    ``recorder``: the Recorder to use; else ``recorder_factory`` builds one on the first call
    (default: ``Recorder.from_settings(load_settings())``). Recording never raises into LiteLLM.
    """

    def __init__(
        self,
        recorder: Recorder | None = None,
        recorder_factory: Callable[[], Recorder] | None = None,
    ) -> None:
        super().__init__()
        self._recorder = recorder
        self._factory = recorder_factory or (lambda: Recorder.from_settings(load_settings()))
        self._lock = threading.Lock()

    @property
    def recorder(self) -> Recorder:
        if self._recorder is None:
            with self._lock:
                if self._recorder is None:
                    self._recorder = self._factory()
        return self._recorder

    def log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.record(kwargs, response_obj, failed=False)

    def log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.record(kwargs, response_obj, failed=True)

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.record(kwargs, response_obj, failed=False)  # record() does not block

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.record(kwargs, response_obj, failed=True)

    def record(self, kwargs: Mapping[str, Any], response: Any, failed: bool) -> str | None:
        """Record one call from LiteLLM's callback arguments; the event id, or None if dropped."""
        payload = kwargs.get("standard_logging_object") or {}
        metadata = payload.get("metadata") or {}
        fields: dict[str, Any] = {
            "operation": OPERATIONS.get(str(payload.get("call_type", "")), "other"),
            "tags": call_tags(payload, metadata),
        }
        call_id = payload.get("id") or kwargs.get("litellm_call_id")
        if call_id:
            fields["event_id"] = ("litellm-" + _UNSAFE_ID.sub("_", str(call_id)))[:128]
        started, ended = payload.get("startTime"), payload.get("endTime")
        if isinstance(ended, int | float):
            fields["event_time"] = datetime.fromtimestamp(ended, UTC)
            if isinstance(started, int | float) and ended >= started:
                fields["latency_ms"] = (ended - started) * 1000
        usage = None
        if failed:
            error = payload.get("error_information") or {}
            fields["status"] = "error"
            fields["error_type"] = str(error.get("error_class") or "error")[:200]
        else:
            usage = get(response, "usage") or metadata.get("usage_object")
            writes = get(usage, "cache_creation_input_tokens")
            if writes:
                fields["cache_write_tokens"] = int(writes)
                # Anthropic's 1-hour writes, priced at their own rate (docs/pricing.md)
                details = get(get(usage, "prompt_tokens_details"), "cache_creation_token_details")
                hour = get(details, "ephemeral_1h_input_tokens")
                if hour:
                    fields["cache_write_1h_tokens"] = min(int(hour), int(writes))
        return self.recorder.record(
            provider=payload.get("custom_llm_provider") or "unknown",
            model=payload.get("model") or kwargs.get("model") or "unknown",
            usage=usage,
            **fields,
        )


def call_tags(payload: Mapping[str, Any], metadata: Mapping[str, Any]) -> dict[str, str]:
    """Tags of one proxied call (see the module docstring)."""
    tags: dict[str, str] = {}
    words: list[str] = []
    for tag in payload.get("request_tags") or ():
        key, separator, value = str(tag).partition(":")
        if separator and TAG_KEY_PATTERN.match(key.strip()) and value.strip():
            tags[key.strip()] = value.strip()
        else:
            words.append(str(tag))
    if words:
        tags["request_tags"] = ",".join(sorted(words))
    named = {
        "team": metadata.get("user_api_key_team_alias") or metadata.get("user_api_key_team_id"),
        "key_alias": metadata.get("user_api_key_alias"),
        "user": payload.get("end_user")
        or metadata.get("user_api_key_end_user_id")
        or metadata.get("user_api_key_user_id"),
        "model_group": payload.get("model_group"),
    }
    tags.update({key: str(value) for key, value in named.items() if value})
    return tags


# The instance the proxy config names; its Recorder is built on the first proxied call.
proxy_handler = SpendstreamCallback()

__all__ = ["SpendstreamCallback", "call_tags", "proxy_handler"]
