"""The Faust application: the usage topic, the dead-letter topic, one agent, and web views.

Faust runs at-least-once (exactly-once needs InitProducerId, which Tansu lacks; see INFRA.md).
Spend windows are not Faust tables: tables over-count on rebalances and their changelog recovery
is wrong on Tansu, so minute/hour/day windows are recomputed in ClickHouse from the deduplicated
ledger for every batch (see ``sinks.ledger``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import faust
from clickhouse_connect.driver.client import Client
from faust.web import Request, Response, View
from prometheus_client import generate_latest

from spendstream.config import Settings
from spendstream.sinks.access import jsonable
from spendstream.stream import metrics
from spendstream.stream.deadletter import DeadLetter
from spendstream.stream.pipeline import Pipeline
from spendstream.stream.processor import RawMessage, is_ndjson


def create_app(settings: Settings) -> faust.App:
    """A Faust app configured for at-least-once processing with short group sessions."""
    worker = settings.worker
    return faust.App(
        worker.app_id,
        broker=f"kafka://{settings.kafka.bootstrap_servers}",
        store="memory://",
        processing_guarantee="at_least_once",
        broker_session_timeout=worker.session_timeout_s,
        broker_heartbeat_interval=worker.heartbeat_interval_s,
        broker_commit_every=worker.batch_size,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=max(4096, worker.batch_size * 2),
        # Tansu auto-creates topics with 4 partitions; keep Faust's internal topics the same.
        topic_partitions=4,
        web_host=worker.web_host,
        web_port=worker.web_port,
        web_enabled=True,
        producer_compression_type="lz4",
        consumer_auto_offset_reset="earliest",
    )


def wire_app(app: faust.App, settings: Settings, pipeline: Pipeline, reader: Client) -> faust.App:
    """Declare the topics, the agent and the web views on ``app``."""
    usage_topic = app.topic(settings.kafka.usage_topic, value_serializer="raw")
    dead_letter_topic = app.topic(settings.kafka.dead_letter_topic, value_serializer="raw")
    read_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sql")

    async def publish_dead_letters(letters: Sequence[DeadLetter]) -> None:
        sent = [
            await dead_letter_topic.send(
                key=f"{letter.source_partition}:{letter.source_offset}:{letter.source_index}".encode(),
                value=letter.model_dump_json().encode(),
            )
            for letter in letters
        ]
        await asyncio.gather(*sent)  # wait for the broker's acks before the batch is acked

    pipeline.publish_dead_letters = publish_dead_letters

    @app.agent(usage_topic)
    async def process_usage(stream: faust.StreamT[bytes]) -> None:
        # take_events is on the concrete Stream (it yields events, which carry Kafka origins).
        batches = cast(faust.Stream[bytes], stream).take_events(
            settings.worker.batch_size, within=settings.worker.batch_within_s
        )
        async for events in batches:
            await pipeline.handle(
                [
                    RawMessage(
                        event.value,
                        event.message.topic,
                        event.message.partition,
                        event.message.offset,
                        is_ndjson(event.message.headers),
                    )
                    for event in events
                ]
            )
            record_lag(app, events)

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(generate_latest(metrics.REGISTRY), content_type="text/plain")

    @app.page("/healthz")
    class HealthView(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/sql")
    class SqlView(View):
        """Read-only SQL over the worker's ClickHouse (the only way in while chDB is open)."""

        async def post(self, request: Request) -> Response:
            body = await request.json()
            query = str(body.get("query", ""))
            parameters = body.get("parameters") or {}
            loop = asyncio.get_running_loop()
            try:
                result = await loop.run_in_executor(
                    read_executor, lambda: reader.query(query, parameters=parameters)
                )
            except Exception as exc:
                return self.json({"error": str(exc)}, status=400)
            payload = {
                "columns": list(result.column_names),
                "rows": [jsonable(list(row)) for row in result.result_rows],
            }
            return self.bytes(json.dumps(payload).encode(), content_type="application/json")

    return app


def record_lag(app: faust.App, events: Sequence[Any]) -> None:
    """Update the consumer-lag gauge from the batch's last offsets and the high-water marks."""
    last: dict[Any, int] = {}
    for event in events:
        message = event.message
        last[message.tp] = max(last.get(message.tp, -1), message.offset)
    consumer = app.consumer
    for tp, offset in last.items():
        highwater = consumer.highwater(tp)
        if highwater is not None:
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(
                max(0, highwater - offset - 1)
            )
