"""OTLP agent spans: the real opentelemetry-instrumentation-openai-v2 spans under an
``invoke_agent`` parent give one run with every step; conversation, agent and tool names map;
every spelling of the usage attributes prices the same; the provider's cost is kept (pure: real
OpenTelemetry SDK spans, a local OpenAI stand-in, no broker)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spendstream.config import DEFAULT_OTLP_TAGS
from spendstream.events import UsageEvent
from spendstream.ingest.genai import SpanConverter
from spendstream.pricing.rating import default_pricer
from tests.support.otel import OpenAIStandIn, Usage, instrumented_openai, otlp_json, otlp_proto

converter = SpanConverter(DEFAULT_OTLP_TAGS)
AGENT = {
    "gen_ai.operation.name": "invoke_agent",
    "gen_ai.agent.name": "triage",
    "gen_ai.conversation.id": "conv-42",
    "gen_ai.provider.name": "openai",
}


@pytest.mark.parametrize("encode", [otlp_proto, otlp_json])
def test_instrumented_calls_under_an_agent_span_are_one_run(encode: object) -> None:
    with OpenAIStandIn() as api:
        api.usages += [Usage(1_000, 100), Usage(2_000, 200, cached=500), Usage(300, 0)]
        with instrumented_openai(api.base_url, {"service.name": "desk"}) as (client, exp, tp):
            tracer = tp.get_tracer("agent-framework")
            with tracer.start_as_current_span("invoke_agent triage", attributes=AGENT) as agent:
                agent.set_attribute("spendstream.customer", "acme")
                for _ in range(2):
                    client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                    )
                with tracer.start_as_current_span(
                    "execute_tool search",
                    attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "kb"},
                ):
                    client.embeddings.create(model="text-embedding-3-small", input="hi")
            spans = exp.get_finished_spans()
            with tracer.start_as_current_span("no agent"):  # a call outside any agent
                api.usages.append(Usage(10, 1))
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
                )
            outside = exp.get_finished_spans()[len(spans) :]
    assert callable(encode)
    result = converter.convert(encode([*spans, *outside]))  # one export: a grouped trace
    assert result.rejected == [] and result.ignored == 3  # the agent, tool and plain spans
    run = [e for e in result.events if e.run_id is not None]
    [lone] = [e for e in result.events if e.run_id is None]
    agent_context = next(s for s in spans if s.name.startswith("invoke_agent")).context
    assert agent_context is not None
    trace = f"{agent_context.trace_id:032x}"
    run_id = f"otel-{trace}-{agent_context.span_id:016x}"
    assert [(e.run_id, e.agent, e.session_id, e.customer, e.step) for e in run] == [
        (run_id, "triage", "conv-42", "acme", 1),
        (run_id, "triage", "conv-42", "acme", 2),
        (run_id, "triage", "conv-42", "acme", 3),
    ]
    assert run[0].parent == run_id and run[0].trace_id == trace
    assert run[2].operation == "embeddings" and run[2].parent != run_id  # under the tool span
    assert [e.input_tokens for e in run] == [1_000, 2_000, 300]
    assert (lone.run_id, lone.agent, lone.step, lone.session_id) == (None, None, None, None)
    assert lone.trace_id is not None and lone.parent is not None


def test_calls_exported_before_their_agent_span_keep_trace_and_parent(
    tracer: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = tracer
    with provider.get_tracer("t").start_as_current_span("invoke_agent", attributes=AGENT):
        with provider.get_tracer("t").start_as_current_span("chat", attributes=CHAT):
            pass
        early = list(exporter.get_finished_spans())  # the call, exported alone
    [event] = converter.convert(otlp_proto(early)).events
    assert event.run_id is None and event.step is None
    assert event.parent is not None and event.parent.startswith(f"otel-{event.trace_id}-")
    # A later export holding the whole trace (groupbytrace) resolves the run.
    [again] = converter.convert(otlp_proto(exporter.get_finished_spans())).events
    assert again.event_id == event.event_id and again.run_id == again.parent


CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "anthropic",
    "gen_ai.request.model": "claude-sonnet-4-5",
    "gen_ai.usage.input_tokens": 100_000,
    "gen_ai.usage.output_tokens": 4_000,
}


@pytest.fixture
def tracer() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "agents"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def convert_one(
    tracer: tuple[TracerProvider, InMemorySpanExporter], attributes: dict[str, object]
) -> UsageEvent:
    provider, exporter = tracer
    exporter.clear()
    with provider.get_tracer("t").start_as_current_span("chat", attributes=attributes):
        pass
    result = converter.convert(otlp_proto(exporter.get_finished_spans()))
    assert result.rejected == [], result.rejected
    [event] = result.events
    return event


SPELLINGS = {
    "cache_read_tokens": [
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
        "gen_ai.usage.cached_input_tokens",
        "gen_ai.usage.input_tokens.cached",
        "gen_ai.usage.prompt_tokens_details.cached_tokens",
    ],
    "cache_write_tokens": [
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_write_input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
    ],
}


@pytest.mark.parametrize(
    ("field", "attribute"),
    [(field, name) for field, names in SPELLINGS.items() for name in names],
)
def test_every_spelling_of_cache_tokens_prices_the_same(
    tracer: tuple[TracerProvider, InMemorySpanExporter], field: str, attribute: str
) -> None:
    event = convert_one(tracer, {**CHAT, attribute: 40_000})
    reference = UsageEvent(
        provider="anthropic",
        model="claude-sonnet-4-5",
        input_tokens=100_000,
        output_tokens=4_000,
        **{field: 40_000},
    )
    assert getattr(event, field) == 40_000
    pricer = default_pricer()
    assert pricer.rate(event).cost_total == pricer.rate(reference).cost_total
    # By hand, cache writes: 60,000 x $3/M + 40,000 x $3.75/M + 4,000 x $15/M = $0.39.
    if field == "cache_write_tokens":
        assert pricer.rate(event).cost_total == Decimal("0.39")


@pytest.mark.parametrize(
    "attribute",
    [
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.usage.reasoning_tokens",
        "gen_ai.usage.output_tokens.reasoning",
        "gen_ai.usage.completion_tokens_details.reasoning_tokens",
    ],
)
def test_every_spelling_of_reasoning_is_read(
    tracer: tuple[TracerProvider, InMemorySpanExporter], attribute: str
) -> None:
    attributes = {**CHAT, "gen_ai.provider.name": "openai", "gen_ai.request.model": "o3"}
    event = convert_one(tracer, {**attributes, attribute: 3_000})
    assert event.reasoning_tokens == 3_000


@pytest.mark.parametrize(
    ("attribute", "unit", "tokens"),
    [
        ("gen_ai.usage.audio.input_tokens", "audio_input_tokens", "input_tokens"),
        ("gen_ai.usage.input_tokens.audio", "audio_input_tokens", "input_tokens"),
        ("gen_ai.usage.prompt_tokens_details.audio_tokens", "audio_input_tokens", "input_tokens"),
        ("gen_ai.usage.audio.output_tokens", "audio_output_tokens", "output_tokens"),
        ("gen_ai.usage.output_tokens.audio", "audio_output_tokens", "output_tokens"),
    ],
)
def test_audio_subsets_become_units_as_the_sdk_makes_them(
    tracer: tuple[TracerProvider, InMemorySpanExporter], attribute: str, unit: str, tokens: str
) -> None:
    attributes = {**CHAT, "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
    event = convert_one(tracer, {**attributes, attribute: 1_000})
    assert event.units == {unit: 1_000}
    assert getattr(event, tokens) == {"input_tokens": 99_000, "output_tokens": 3_000}[tokens]


def test_provider_cost_is_kept_and_agent_names_map(
    tracer: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    event = convert_one(
        tracer,
        {
            **CHAT,
            "gen_ai.usage.cost": 0.123456,
            "gen_ai.conversation.id": "thread/7 of 9",  # characters an id cannot hold
            "gen_ai.agent.name": "coder",
            "gen_ai.tool.name": "run_tests",
        },
    )
    assert event.provider_cost_usd == Decimal("0.123456")
    assert (event.session_id, event.agent, event.tool) == ("thread_7_of_9", "coder", "run_tests")
    parts = convert_one(
        tracer, {**CHAT, "gen_ai.usage.cost.input": 0.3, "gen_ai.usage.cost.output": "0.06"}
    )
    assert parts.provider_cost_usd == Decimal("0.36")
    # The provider's figure never replaces our price.
    assert default_pricer().rate(event).cost_total == Decimal("0.36")
    provider, exporter = tracer
    exporter.clear()
    with provider.get_tracer("t").start_as_current_span(
        "chat", attributes={**CHAT, "gen_ai.usage.cost": "lots"}
    ):
        pass
    [rejected] = converter.convert(otlp_proto(exporter.get_finished_spans())).rejected
    assert "gen_ai.usage.cost = 'lots' is not a cost in USD" in rejected.reason
