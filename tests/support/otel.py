"""Real OpenTelemetry GenAI spans for tests, serialised as the Collector's Kafka exporter does.

- :class:`OpenAIStandIn`: a local HTTP server answering OpenAI's ``/v1/chat/completions`` and
  ``/v1/embeddings`` with usage, so the real ``openai`` client can call it.
- :func:`instrumented_openai`: the OpenAI client instrumented by
  ``opentelemetry-instrumentation-openai-v2``, spans captured by an in-memory exporter.
- :func:`otlp_proto` / :func:`otlp_json`: spans as one ``ExportTraceServiceRequest``, encoded as
  the Collector's ``otlp_proto`` (protobuf bytes) and ``otlp_json`` (OTLP/JSON: lowerCamelCase,
  hex trace/span ids, int64 as strings, enums as integers) encodings.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

ID_FIELDS = ("traceId", "spanId", "parentSpanId")


@dataclass(frozen=True)
class Usage:
    prompt: int
    completion: int
    cached: int = 0
    reasoning: int = 0


class OpenAIStandIn:
    """OpenAI-compatible endpoints on 127.0.0.1; each request consumes the next queued usage."""

    def __init__(self) -> None:
        self.usages: list[Usage] = []
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stand_in.lock:
                    usage = stand_in.usages.pop(0)
                answer = stand_in.answer(self.path, body, usage)
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1"

    def answer(self, path: str, body: dict[str, Any], usage: Usage) -> dict[str, Any]:
        model = body["model"]
        if path.endswith("/embeddings"):
            return {
                "object": "list",
                "model": model,
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                "usage": {"prompt_tokens": usage.prompt, "total_tokens": usage.prompt},
            }
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": f"{model}-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": usage.prompt,
                "completion_tokens": usage.completion,
                "total_tokens": usage.prompt + usage.completion,
                "prompt_tokens_details": {"cached_tokens": usage.cached},
                "completion_tokens_details": {"reasoning_tokens": usage.reasoning},
            },
        }

    def __enter__(self) -> OpenAIStandIn:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def instrumented_openai(
    base_url: str, resource: dict[str, str]
) -> Iterator[tuple[openai.OpenAI, InMemorySpanExporter, TracerProvider]]:
    """An OpenAI client whose calls produce GenAI spans (instrumentation removed on exit)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(resource))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield (
            openai.OpenAI(base_url=base_url, api_key="test-key", max_retries=0),
            exporter,
            provider,
        )
    finally:
        instrumentor.uninstrument()
        provider.shutdown()


def otlp_proto(spans: Sequence[ReadableSpan]) -> bytes:
    """The Collector's ``otlp_proto`` encoding of one export of ``spans``."""
    return encode_spans(spans).SerializeToString()


def otlp_json(spans: Sequence[ReadableSpan]) -> bytes:
    """The Collector's ``otlp_json`` encoding (OTLP/JSON) of one export of ``spans``."""
    document = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    _hex_ids(document)
    return json.dumps(document, separators=(",", ":")).encode()


def _hex_ids(node: Any) -> None:
    """Protobuf's JSON mapping writes bytes as base64; OTLP/JSON writes ids as hex."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ID_FIELDS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)
