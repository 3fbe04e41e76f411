"""The LiteLLM proxy callback, driven by LiteLLM's own callback machinery in-process (mocked
responses, proxy-style metadata), recording through the SDK into a real Tansu broker.

LiteLLM is imported when the test runs, not when pytest collects: its import takes seconds and
every xdist worker collects every module."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from kafka import KafkaConsumer

from spendstream.embedded import TansuBroker
from spendstream.events import UsageEvent, parse_event
from tests.support.traffic import USAGE_TOPIC

if TYPE_CHECKING:
    from spendstream.producers.litellm_callback import SpendstreamCallback

pytestmark = pytest.mark.integration

PROXY_METADATA = {  # what the LiteLLM proxy puts in metadata for a virtual key of a team
    "user_api_key_team_alias": "search",
    "user_api_key_team_id": "team-1234",
    "user_api_key_alias": "search-prod-key",
    "user_api_key_user_id": "alice",
    "tags": ["feature:qa", "beta"],
}


@pytest.fixture
def litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download at import
    import litellm

    return litellm


@pytest.fixture
def handler(
    tmp_path: Path, broker: TansuBroker, monkeypatch: pytest.MonkeyPatch, litellm: Any
) -> Iterator[SpendstreamCallback]:
    from litellm.proxy.types_utils.utils import get_instance_fn

    from spendstream.producers import litellm_callback

    config = tmp_path / "spendstream.toml"
    config.write_text(
        f'[kafka]\nbootstrap_servers = "{broker.bootstrap_servers}"\n'
        f'[producer]\nspool_dir = "{tmp_path / "spool"}"\n'
    )
    monkeypatch.setenv("SPENDSTREAM_CONFIG", str(config))
    # What the proxy does with `callbacks: spendstream.producers.litellm_callback.proxy_handler`
    loaded = get_instance_fn("spendstream.producers.litellm_callback.proxy_handler")
    assert loaded is litellm_callback.proxy_handler
    monkeypatch.setattr(litellm, "callbacks", [loaded])
    yield loaded
    loaded.recorder.close()


def mocked_response(litellm: Any, prompt: int, completion: int, cached: int, reasoning: int) -> Any:
    return litellm.ModelResponse(
        model="gpt-4o-mini",
        choices=[{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        usage=litellm.Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            prompt_tokens_details={"cached_tokens": cached},
            completion_tokens_details={"reasoning_tokens": reasoning},
        ),
    )


def read_events(bootstrap: str, expected: int, timeout_s: float = 30) -> list[UsageEvent]:
    consumer = KafkaConsumer(
        USAGE_TOPIC,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1_000,
    )
    events: list[UsageEvent] = []
    deadline = time.monotonic() + timeout_s
    while len(events) < expected and time.monotonic() < deadline:
        for record in consumer:
            lines = record.value.split(b"\n")
            events.extend(parse_event(line) for line in lines if line.strip())
    consumer.close()
    return events


async def proxy_style_call(
    litellm: Any, handler: SpendstreamCallback, messages: list[dict[str, str]]
) -> None:
    """The proxy's path (acompletion -> async_log_success_event), in a loop that stays alive
    until LiteLLM's logging task has run, as the proxy's loop does."""
    await litellm.acompletion(
        model="gpt-4o-mini",
        messages=messages,
        mock_response=mocked_response(litellm, 300, 30, 0, 0),
        metadata={**PROXY_METADATA, "tags": []},
    )
    deadline = time.monotonic() + 30
    while handler.recorder.stats().recorded < 2:
        assert time.monotonic() < deadline, "LiteLLM did not call the async callback"
        await asyncio.sleep(0.05)


def test_proxied_calls_are_recorded_with_team_key_user_and_tags(
    litellm: Any, handler: SpendstreamCallback, broker: TansuBroker
) -> None:
    messages = [{"role": "user", "content": "hello"}]
    litellm.completion(
        model="gpt-4o-mini",
        messages=messages,
        mock_response=mocked_response(litellm, 1_000, 200, 600, 50),
        metadata={**PROXY_METADATA, "user_api_key_end_user_id": "end-user-7"},
        user="end-user-7",
    )
    asyncio.run(proxy_style_call(litellm, handler, messages))
    with pytest.raises(litellm.exceptions.InternalServerError):
        litellm.completion(
            model="gpt-4o-mini",
            messages=messages,
            mock_response=Exception("provider down"),
            metadata=PROXY_METADATA,
        )
    deadline = time.monotonic() + 30
    while handler._recorder is None or handler.recorder.stats().recorded < 3:
        assert time.monotonic() < deadline, "LiteLLM did not call the callback three times"
        time.sleep(0.1)
    assert handler.recorder.flush(30)

    events = sorted(read_events(broker.bootstrap_servers, 3), key=lambda e: e.input_tokens)
    assert len(events) == 3
    failed, second, first = events
    assert (first.provider, first.model, first.operation) == ("openai", "gpt-4o-mini", "chat")
    assert (first.input_tokens, first.cache_read_tokens) == (1_000, 600)
    assert (first.output_tokens, first.reasoning_tokens) == (200, 50)
    assert first.tags == {
        "team": "search",
        "key_alias": "search-prod-key",
        "user": "end-user-7",
        "feature": "qa",
        "request_tags": "beta",
    }
    assert first.event_id.startswith("litellm-") and first.latency_ms is not None
    assert (second.input_tokens, second.output_tokens) == (300, 30)
    assert second.tags == {"team": "search", "key_alias": "search-prod-key", "user": "alice"}
    assert (failed.status, failed.input_tokens, failed.tags["team"]) == ("error", 0, "search")
    assert failed.error_type
    assert len({event.event_id for event in events}) == 3


class FieldsSeen:
    """A recorder that keeps the fields it is given (the callback's mapping, no broker)."""

    def __init__(self) -> None:
        self.fields: list[dict[str, Any]] = []

    def record(self, **fields: Any) -> str:
        self.fields.append(fields)
        return "seen"


def test_anthropic_1h_cache_writes_are_recorded_apart(litellm: Any) -> None:
    """LiteLLM's usage keeps Anthropic's 1-hour writes in ``prompt_tokens_details.
    cache_creation_token_details``; they are priced at their own rate (hostile report 13)."""
    from spendstream.producers.litellm_callback import SpendstreamCallback

    response = litellm.ModelResponse(
        model="claude-sonnet-4-5",
        choices=[{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        usage=litellm.Usage(
            prompt_tokens=300,
            completion_tokens=30,
            total_tokens=330,
            cache_creation_input_tokens=200,
            prompt_tokens_details={
                "cached_tokens": 0,
                "cache_creation_token_details": {"ephemeral_1h_input_tokens": 150},
            },
        ),
    )
    seen = FieldsSeen()
    handler = SpendstreamCallback(recorder=seen)  # type: ignore[arg-type]
    payload = {"id": "call-1h", "custom_llm_provider": "anthropic", "model": "claude-sonnet-4-5"}
    handler.record({"standard_logging_object": payload}, response, failed=False)
    [fields] = seen.fields
    assert (fields["cache_write_tokens"], fields["cache_write_1h_tokens"]) == (200, 150)
