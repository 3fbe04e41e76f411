"""Benchmark: HTTP ingest and OTLP span conversion, each against its raw limit on this machine.

1. HTTP ingest (``POST /api/v1/events``, batches of 100 events, a few client threads): events
   per second acknowledged by the broker, measured in one run beside the SDK (``record()`` N
   events + ``flush()``) and a bare ``KafkaProducer`` (send pre-serialised events, ``flush()``)
   against the same Tansu broker. The server runs in its own process (uvicorn, one worker) so the
   load generator does not share its GIL.
2. OTLP span conversion: microseconds per span for ``SpanConverter.convert`` on exports of GenAI
   spans (``otlp_proto`` and ``otlp_json``), next to the bare decode of the same bytes
   (``ExportTraceServiceRequest.ParseFromString`` / ``json.loads``).

Usage::

    python -m bench.bench_ingest --events 50000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaProducer

from bench.common import machine_facts, ratio, summarise
from spendstream.config import DEFAULT_OTLP_TAGS, HttpIngestSettings
from spendstream.embedded import TansuBroker, free_port, wait_for_port
from spendstream.events import UsageEvent
from spendstream.ingest.genai import SpanConverter
from spendstream.producers import Recorder, RecorderOptions

TOKEN = "bench-token"
BATCH = 100


def serve(port: int, bootstrap: str) -> None:
    """The ingest router on uvicorn (runs in the server subprocess)."""
    import uvicorn
    from fastapi import FastAPI, HTTPException, Request

    from spendstream.auth.roles import Principal, Role
    from spendstream.ingest.http import ingest_router
    from spendstream.ingest.publisher import KafkaEventPublisher

    class Authenticator:
        def authenticate(self, request: Request) -> Principal:
            if request.headers.get("authorization") != f"Bearer {TOKEN}":
                raise HTTPException(status_code=401, detail="unknown token")
            return Principal("bench", Role.SERVICE)

    app = FastAPI()
    app.state.authenticator = Authenticator()
    publisher = KafkaEventPublisher(RecorderOptions(bootstrap_servers=bootstrap))
    app.include_router(ingest_router(publisher, HttpIngestSettings()))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def events(count: int, prefix: str) -> list[UsageEvent]:
    teams = ("search", "support", "growth", "research", "platform")
    return [
        UsageEvent(
            event_id=f"{prefix}-{i}",
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=100 + i % 1000,
            output_tokens=i % 100,
            tags={"team": teams[i % 5], "app": "bench"},
        )
        for i in range(count)
    ]


def http_rate(url: str, payloads: list[bytes], threads: int) -> float:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:

        def post(body: bytes) -> int:
            answer = client.post("/api/v1/events", content=body)
            assert answer.status_code == 200, answer.text
            return int(answer.json()["accepted"])

        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            accepted = sum(pool.map(post, payloads))
        elapsed = time.perf_counter() - started
    assert accepted == len(payloads) * BATCH
    return accepted / elapsed


def sdk_rate(bootstrap: str, batch: list[UsageEvent], spool: Path) -> float:
    with Recorder(bootstrap_servers=bootstrap, spool_dir=str(spool)) as recorder:
        recorder.record(batch[0])
        assert recorder.flush(30)  # connected and warm before timing
        started = time.perf_counter()
        for event in batch:
            recorder.record(event)
        assert recorder.flush(120)
        return len(batch) / (time.perf_counter() - started)


def raw_rate(bootstrap: str, packs: list[bytes]) -> float:
    """A bare producer sending the same NDJSON packs of 100 events (events per second)."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, compression_type="lz4"
    )
    headers = [("content-type", b"application/x-ndjson")]
    producer.send("spendstream.usage.v1", packs[0], headers=headers).get(30)
    started = time.perf_counter()
    for pack in packs:
        producer.send("spendstream.usage.v1", pack, headers=headers)
    producer.flush()
    rate = len(packs) * BATCH / (time.perf_counter() - started)
    producer.close()
    return rate


def span_exports(spans: int) -> tuple[bytes, bytes]:
    """One export of ``spans`` GenAI spans from the OpenTelemetry SDK, proto and JSON."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tests.support.otel import otlp_json, otlp_proto

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    for i in range(spans):
        attributes: dict[str, str | int] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.usage.input_tokens": 100 + i,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.usage.cache_read.input_tokens": 50,
            "deployment.environment.name": "prod",
        }
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes=attributes):
            pass
    finished = exporter.get_finished_spans()
    return otlp_proto(finished), otlp_json(finished)


def per_span_us(action: Any, payload: bytes, spans: int, runs: int) -> list[float]:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action(payload)
        timings.append((time.perf_counter() - started) / spans * 1e6)
    return timings


def conversion(spans: int, runs: int) -> dict[str, Any]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    proto, as_json = span_exports(spans)
    converter = SpanConverter(DEFAULT_OTLP_TAGS)
    assert len(converter.convert(proto).events) == spans
    return {
        "spans_per_export": spans,
        "proto_convert_us_per_span": summarise(
            per_span_us(converter.convert, proto, spans, runs), 2
        ),
        "proto_decode_us_per_span": summarise(
            per_span_us(ExportTraceServiceRequest.FromString, proto, spans, runs), 2
        ),
        "json_convert_us_per_span": summarise(
            per_span_us(converter.convert, as_json, spans, runs), 2
        ),
        "json_decode_us_per_span": summarise(per_span_us(json.loads, as_json, spans, runs), 2),
    }


def http_vs_sdk(count: int, runs: int, threads: int, work: Path) -> dict[str, Any]:
    figures: dict[str, list[float]] = {"http": [], "sdk": [], "raw": []}
    with TansuBroker(log_path=work / "tansu.log") as broker:
        port = free_port()
        command = [sys.executable, "-m", "bench.bench_ingest", "--serve", str(port)]
        with (work / "server.log").open("ab") as log:
            server = subprocess.Popen(
                [*command, broker.bootstrap_servers], stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port("127.0.0.1", port, 60)
            url = f"http://127.0.0.1:{port}"
            for run in range(runs):
                batch = events(count, f"run{run}")
                lines = [event.to_json_bytes() for event in batch]
                payloads = [b"\n".join(lines[i : i + BATCH]) for i in range(0, count, BATCH)]
                http_rate(url, payloads[:10], threads)  # warm: producer connected, metadata
                figures["http"].append(http_rate(url, payloads, threads))
                figures["sdk"].append(sdk_rate(broker.bootstrap_servers, batch, work / f"s{run}"))
                figures["raw"].append(raw_rate(broker.bootstrap_servers, payloads))
        finally:
            server.terminate()
            server.wait(30)
    medians = {name: summarise(values) for name, values in figures.items()}
    return {
        "events": count,
        "batch": BATCH,
        "client_threads": threads,
        "http_events_per_s": medians["http"],
        "sdk_events_per_s": medians["sdk"],
        "raw_producer_events_per_s": medians["raw"],
        "http_vs_sdk": ratio(medians["http"]["median"], medians["sdk"]["median"]),
        "http_vs_raw": ratio(medians["http"]["median"], medians["raw"]["median"]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_ingest")
    parser.add_argument("--events", type=int, default=50_000, help="events per HTTP/SDK run")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median reported)")
    parser.add_argument("--threads", type=int, default=4, help="HTTP client threads")
    parser.add_argument("--spans", type=int, default=1_000, help="GenAI spans per export")
    parser.add_argument("--out", type=Path, default=None, help="also write the results here")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "BOOTSTRAP"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as work:
        results = {
            "machine": machine_facts(),
            "otlp_conversion": conversion(args.spans, args.runs),
            "http_ingest": http_vs_sdk(args.events, args.runs, args.threads, Path(work)),
        }
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
