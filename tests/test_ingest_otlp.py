"""OTLP span conversion over real OpenTelemetry SDK spans (pure: no broker, no worker)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from spendstream.config import DEFAULT_OTLP_TAGS, ConfigError, load_settings
from spendstream.ingest.genai import Conversion, SpanConverter
from spendstream.ingest.otlp import OtlpDecodeError
from spendstream.pricing.rating import default_pricer
from spendstream.stream.processor import RawMessage
from spendstream.stream.spans import convert_records
from tests.support.otel import OpenAIStandIn, Usage, instrumented_openai, otlp_json, otlp_proto

ENCODINGS = [otlp_proto, otlp_json]
Encode = Callable[[Sequence[ReadableSpan]], bytes]
Tracer = tuple[TracerProvider, InMemorySpanExporter]
converter = SpanConverter(DEFAULT_OTLP_TAGS)


@pytest.fixture
def tracer() -> Iterator[Tracer]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "rag", "deployment.environment.name": "prod"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def span(provider: TracerProvider, attributes: dict[str, object], error: str | None = None) -> None:
    with provider.get_tracer("test").start_as_current_span("chat", attributes=attributes) as s:
        if error:
            s.set_status(Status(StatusCode.ERROR, error))


CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "anthropic",
    "gen_ai.request.model": "claude-sonnet-4-5",
    "gen_ai.usage.input_tokens": 1_000,
    "gen_ai.usage.output_tokens": 200,
}


@pytest.mark.parametrize("encode", ENCODINGS)
def test_instrumented_openai_client_spans_become_events(encode: Encode) -> None:
    with OpenAIStandIn() as api:
        api.usages += [Usage(120, 30), Usage(50, 0)]
        resource = {"service.name": "chatbot", "deployment.environment.name": "staging"}
        with instrumented_openai(api.base_url, resource) as (client, exporter, _):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            client.embeddings.create(model="text-embedding-3-small", input="hi")
            spans = exporter.get_finished_spans()
    result = converter.convert(encode(spans))
    assert (result.spans, result.ignored, result.rejected) == (2, 0, [])
    chat, embedding = result.events
    assert (chat.provider, chat.model, chat.response_model) == (
        "openai",
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
    )
    assert (chat.operation, chat.input_tokens, chat.output_tokens) == ("chat", 120, 30)
    assert (embedding.operation, embedding.input_tokens) == ("embeddings", 50)
    assert chat.tags == {"app": "chatbot", "env": "staging"}
    first: ReadableSpan = spans[0]
    assert first.context is not None
    assert chat.event_id == (f"otel-{first.context.trace_id:032x}-{first.context.span_id:016x}")
    assert first.end_time is not None and first.start_time is not None
    assert chat.latency_ms == pytest.approx((first.end_time - first.start_time) / 1e6)


@pytest.mark.parametrize("encode", ENCODINGS)
def test_cached_reasoning_tags_errors_and_ignored_spans(tracer: Tracer, encode: Encode) -> None:
    provider, exporter = tracer
    span(
        provider,
        {
            **CHAT,
            "gen_ai.usage.cache_read.input_tokens": 600,
            "gen_ai.usage.cache_creation.input_tokens": 100,
            "gen_ai.usage.reasoning.output_tokens": 50,
            "enduser.id": "u-7",
            "spendstream.tag.feature": "qa",
            "deployment.environment.name": "canary",  # span attribute beats the resource
        },
    )
    legacy = {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o"}
    span(provider, {**legacy, "error.type": "RateLimitError"}, error="429")
    span(provider, {"http.request.method": "GET", "url.full": "http://x"})  # not GenAI
    span(provider, {**CHAT, "gen_ai.operation.name": "invoke_agent"})  # sums its children
    result = converter.convert(encode(exporter.get_finished_spans()))
    assert (result.spans, result.ignored, result.rejected) == (4, 2, [])
    cached, failed = result.events
    assert (cached.input_tokens, cached.cache_read_tokens, cached.cache_write_tokens) == (
        1000,
        600,
        100,
    )
    assert (cached.output_tokens, cached.reasoning_tokens) == (200, 50)
    assert cached.tags == {"app": "rag", "env": "canary", "user": "u-7", "feature": "qa"}
    assert (failed.provider, failed.status, failed.error_type) == (
        "openai",
        "error",
        "RateLimitError",
    )
    assert (failed.input_tokens, failed.output_tokens) == (0, 0)


@pytest.mark.parametrize("encode", ENCODINGS)
def test_unusable_genai_spans_are_rejected_with_the_reason(tracer: Tracer, encode: Encode) -> None:
    provider, exporter = tracer
    span(provider, {**CHAT, "gen_ai.request.model": ""})
    span(provider, {**CHAT, "gen_ai.provider.name": ""})
    span(provider, {**CHAT, "gen_ai.usage.input_tokens": -5})
    span(provider, {**CHAT, "gen_ai.usage.input_tokens": "many"})
    span(provider, {**CHAT, "gen_ai.usage.cache_read.input_tokens": 5_000})
    span(provider, {k: v for k, v in CHAT.items() if not k.startswith("gen_ai.usage")})
    span(provider, CHAT)
    result = converter.convert(encode(exporter.get_finished_spans()))
    reasons = [rejected.reason for rejected in result.rejected]
    assert len(result.events) == 1
    assert [rejected.span.index for rejected in result.rejected] == [0, 1, 2, 3, 4, 5]
    assert "gen_ai.request.model" in reasons[0]
    assert "gen_ai.provider.name" in reasons[1]
    assert "gen_ai.usage.input_tokens = -5" in reasons[2]
    assert "'many'" in reasons[3]
    assert "cache_read_tokens" in reasons[4]
    assert "no token counts" in reasons[5]


# OpenTelemetry's well-known gen_ai.provider.name values and the names our events carry for them
# (hostile report 13, item 4): one name per provider for reconcile, budgets and filters.
OTEL_NAMES = [
    ("aws.bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0", "bedrock"),
    ("azure.ai.openai", "gpt-4o", "azure"),
    ("gcp.vertex_ai", "gemini-2.5-flash", "vertex_ai"),
    ("gcp.gemini", "gemini-2.5-flash", "google"),
    ("gcp.gen_ai", "gemini-2.5-flash", "google"),
    ("mistral_ai", "mistral-large-latest", "mistral"),
    ("openai", "gpt-4o", "openai"),
    ("x_ai", "grok-4", "x_ai"),  # not in the catalog: kept as sent
]


@pytest.mark.parametrize(("otel", "model", "ours"), OTEL_NAMES)
def test_otel_provider_names_are_stored_as_ours_and_priced_alike(
    tracer: Tracer, otel: str, model: str, ours: str
) -> None:
    provider, exporter = tracer
    named = {**CHAT, "gen_ai.provider.name": otel, "gen_ai.request.model": model}
    span(provider, named)
    legacy = {k: v for k, v in named.items() if k != "gen_ai.provider.name"}
    span(provider, {**legacy, "gen_ai.system": otel})
    events = converter.convert(otlp_proto(exporter.get_finished_spans())).events
    assert [event.provider for event in events] == [ours, ours]
    pricer = default_pricer()
    as_sent = pricer.rate(events[0].model_copy(update={"provider": otel}))
    stored = pricer.rate(events[0])
    assert (stored.priced, stored.price_ref, stored.cost_total, stored.placement) == (
        as_sent.priced,
        as_sent.price_ref,
        as_sent.cost_total,
        as_sent.placement,
    )
    assert stored.priced == (ours != "x_ai")


def test_records_become_pipeline_messages_and_dead_letters(tracer: Tracer) -> None:
    provider, exporter = tracer
    span(provider, CHAT)
    span(provider, {**CHAT, "gen_ai.request.model": "", "gen_ai.input.messages": "secret"})
    payload = otlp_proto(exporter.get_finished_spans())
    records = [
        RawMessage(payload, "otlp_spans", 2, 41),
        RawMessage(b"\x0a\xff\xff garbage", "otlp_spans", 2, 42),
        RawMessage(b'{"resourceSpans": 7}', "otlp_spans", 2, 43),
    ]
    batch = convert_records(converter, records)
    (message,) = batch.messages
    assert (message.topic, message.partition, message.offset, message.ndjson) == (
        "otlp_spans",
        2,
        41,
        True,
    )
    assert json.loads(message.value or b"")["model"] == "claude-sonnet-4-5"
    span_letter, proto_letter, json_letter = batch.dead_letters
    assert (span_letter.source_offset, span_letter.source_index) == (41, 1)
    assert (
        json.loads(span_letter.raw_payload())["attributes"]["gen_ai.provider.name"] == "anthropic"
    )
    assert "not an OTLP protobuf trace export" in proto_letter.reason
    assert "not an OTLP/JSON trace export" in json_letter.reason


def test_an_export_the_converter_chokes_on_is_dead_lettered_alone(tracer: Tracer) -> None:
    """Anything one export raises is that export's failure (issue 24: no exception may leave
    the agent, where Faust would acknowledge the batch and never restart it)."""

    class Choking(SpanConverter):
        def convert(self, payload: bytes) -> Conversion:
            if payload == b"choke":
                raise KeyError("gen_ai.usage")
            return super().convert(payload)

    provider, exporter = tracer
    span(provider, CHAT)
    good = otlp_proto(exporter.get_finished_spans())
    records = [RawMessage(b"choke", "otlp_spans", 0, 1), RawMessage(good, "otlp_spans", 0, 2)]
    batch = convert_records(Choking(converter.tags, converter.tag_prefix), records)
    [letter] = batch.dead_letters
    assert letter.source_offset == 1
    assert letter.reason == "could not convert the export (KeyError: 'gen_ai.usage')"
    assert [message.offset for message in batch.messages] == [2]


def test_tag_mapping_is_configurable(tracer: Tracer) -> None:
    provider, exporter = tracer
    span(provider, {**CHAT, "team.name": "search"})
    custom = SpanConverter({"team.name": "team", "service.name": "service"}, tag_prefix=None)
    (event,) = custom.convert(otlp_json(exporter.get_finished_spans())).events
    assert event.tags == {"team": "search", "service": "rag"}


def test_garbage_is_a_decode_error() -> None:
    with pytest.raises(OtlpDecodeError):
        SpanConverter({}, encoding="otlp_json").convert(b"\x0a\x00")


def test_tag_mapping_errors_name_the_key(tmp_path: Path) -> None:
    config = tmp_path / "spendstream.toml"
    config.write_text(
        '[ingest.otlp]\ntopic = "otlp_spans"\n[ingest.otlp.tags]\n"team.name" = "Team!"\n'
    )
    with pytest.raises(ConfigError) as raised:
        load_settings(config)
    assert "ingest.otlp.tags.team.name = 'Team!'" in str(raised.value)
    assert str(config) in str(raised.value)


def test_json_from_generic_protobuf_mapping_is_read_too(tracer: Tracer) -> None:
    """base64 ids and enum names (protobuf's generic JSON mapping) decode like OTLP/JSON."""
    provider, exporter = tracer
    span(provider, CHAT, error="timed out")  # status ERROR only: no error.type attribute
    spans = exporter.get_finished_spans()
    generic = MessageToDict(encode_spans(spans))  # base64 ids, enum names
    assert generic["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["status"]["code"] == (
        "STATUS_CODE_ERROR"
    )
    (from_generic,) = converter.convert(json.dumps(generic).encode()).events
    (from_otlp,) = converter.convert(otlp_json(spans)).events
    assert from_generic == from_otlp
    assert (from_generic.status, from_generic.error_type) == ("error", "timed out")


@pytest.mark.parametrize(
    "attribute",
    [
        "gen_ai.usage.cache_write.input_tokens",  # 2026 name (semantic-conventions-genai#440)
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
    ],
)
def test_cache_writes_price_the_same_under_every_spelling(tracer: Tracer, attribute: str) -> None:
    """The issue's span: claude-sonnet-4-5, 100,000 input tokens of which 50,000 cache writes,
    1,000 output. By hand: 50,000 x $3/M + 50,000 x $3.75/M (write premium) + 1,000 x $15/M =
    0.15 + 0.1875 + 0.015 = $0.3525 (it was $0.315 under the new name: writes lost)."""
    provider, exporter = tracer
    attributes = {
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.usage.input_tokens": 100_000,
        "gen_ai.usage.output_tokens": 1_000,
        attribute: 50_000,
    }
    span(provider, attributes)
    [event] = converter.convert(otlp_proto(exporter.get_finished_spans())).events
    assert event.cache_write_tokens == 50_000
    assert default_pricer().rate(event).cost_total == Decimal("0.3525")


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda s: {**s, "endTimeUnixNano": "99999999999999999999999"}, "is not a time"),
        (
            lambda s: {**s, "attributes": [*s["attributes"], INFINITE_TOKENS]},
            "gen_ai.usage.input_tokens = inf is not a non-negative integer",
        ),
        (lambda s: 5, "span 1 is not an OTLP span"),
        (lambda s: {**s, "attributes": [{"key": "k", "value": {"kvlistValue": 3}}]}, "span 1"),
    ],
)
def test_one_bad_span_is_dead_lettered_alone(
    tracer: Tracer, spoil: Callable[[dict[str, Any]], Any], reason: str
) -> None:
    """A span the decoder or converter chokes on is that span's dead letter, with its reason;
    the good spans of the same export still become events (they all were dead-lettered)."""
    provider, exporter = tracer
    span(provider, CHAT)
    span(provider, {**CHAT, "gen_ai.request.model": "claude-haiku-4-5"})
    export = json.loads(otlp_json(exporter.get_finished_spans()))
    spans = export["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[1] = spoil(spans[1])
    text = json.dumps(export).replace('"__INF__"', "1e400")
    batch = convert_records(converter, [RawMessage(text.encode(), "otlp_spans", 0, 7)])
    [message] = batch.messages
    assert json.loads(message.value or b"")["model"] == "claude-sonnet-4-5"
    [letter] = batch.dead_letters
    assert (letter.source_offset, letter.source_index) == (7, 1)
    assert reason in letter.reason, letter.reason


INFINITE_TOKENS = {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "__INF__"}}
