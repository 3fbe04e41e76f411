"""The Faust side of the stream: the app, its topics, the dead-letter publisher and the agents.

Faust runs at-least-once (exactly-once needs InitProducerId, which Tansu lacks; see INFRA.md).
Spend windows are not Faust tables: tables over-count on rebalances and their changelog recovery
is wrong on Tansu, so minute/hour/day windows are recomputed in ClickHouse from the deduplicated
ledger (see ``sinks.ledger``; the open hour and day once the agent has caught up, or on a timer:
``sinks.open_windows``).

Nothing here wires parts together: :mod:`spendstream.worker.build` creates the app and topics,
hands the dead-letter publisher to the :class:`~spendstream.stream.pipeline.Pipeline`'s
constructor, then declares the agent over that pipeline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import faust

from spendstream.config import Settings
from spendstream.ingest.genai import SpanConverter
from spendstream.stream import metrics
from spendstream.stream.deadletter import DeadLetter
from spendstream.stream.drain import drained
from spendstream.stream.pipeline import Pipeline, StreamPipeline, chunk_by_bytes
from spendstream.stream.processor import RawMessage, is_ndjson
from spendstream.stream.spans import convert_records

IDLE_BATCHES = 4  # batch windows without a batch after one that did not settle: idle


def create_app(settings: Settings) -> faust.App:
    """A Faust app configured for at-least-once processing with short group sessions."""
    worker = settings.worker
    datadir = Path(worker.data_dir) / f"{worker.app_id}-data"
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
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
        # The HTTP API is served by uvicorn (spendstream.api), not by Faust's web server. Faust
        # honours web_enabled=False when run through faust.Worker as we do; only its `faust
        # worker` CLI forces it on (--with-web default). tests/test_api_cli.py checks the port.
        web_enabled=False,
        web_host="127.0.0.1",
        producer_compression_type="lz4",
        consumer_auto_offset_reset="earliest",
        # Faust's default datadir is "<app_id>-data" in the current directory.
        datadir=str(datadir),
    )


@dataclass(frozen=True)
class Topics:
    usage: faust.TopicT
    dead_letters: faust.TopicT
    otlp_spans: faust.TopicT | None  # None: OTLP ingestion is off (``ingest.otlp.topic`` unset)
    outcomes: faust.TopicT


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    otlp_topic = settings.ingest.otlp.topic
    return Topics(
        usage=app.topic(settings.kafka.usage_topic, value_serializer="raw"),
        dead_letters=app.topic(settings.kafka.dead_letter_topic, value_serializer="raw"),
        otlp_spans=app.topic(otlp_topic, value_serializer="raw") if otlp_topic else None,
        outcomes=app.topic(settings.kafka.outcome_topic, value_serializer="raw"),
    )


class KafkaDeadLetters:
    """Publishes dead letters to the dead-letter topic and waits for the broker's acks."""

    def __init__(self, topic: faust.TopicT) -> None:
        self.topic = topic

    async def publish(self, letters: Sequence[DeadLetter]) -> None:
        sent = [
            await self.topic.send(
                key=f"{letter.source_partition}:{letter.source_offset}:{letter.source_index}".encode(),
                value=letter.encoded(),
            )
            for letter in letters
        ]
        await asyncio.gather(*sent)  # acked before the batch is acked


def declare_agent(
    app: faust.App,
    topic: faust.TopicT,
    pipeline: StreamPipeline[Any],
    settings: Settings,
    name: str | None = None,
) -> None:
    """An agent handing batches of raw messages from ``topic`` to ``pipeline`` (usage events;
    outcome events with ``name`` set: one agent per topic, each with its own pipeline)."""

    @app.agent(topic, name=name)
    async def process_usage(stream: faust.StreamT[bytes]) -> None:
        # take_events is on the concrete Stream (it yields events, which carry Kafka origins).
        batches = cast(faust.Stream[bytes], stream).take_events(
            settings.worker.batch_size, within=settings.worker.batch_within_s
        )
        async for events in batches:
            caught_up = batch_drained(app, events, settings.worker.batch_size)
            await pipeline.handle(raw_messages(events), caught_up=caught_up)
            record_lag(app, events)

    # A stream that stopped on a full batch settles once it has been idle (stream.drain).
    idle_s = IDLE_BATCHES * settings.worker.batch_within_s

    @app.timer(interval=idle_s / 2, name=f"{name or 'usage'}.settle_idle")
    async def settle_idle() -> None:
        await pipeline.settle_if_idle(idle_s)


def declare_span_agent(
    app: faust.App,
    topic: faust.TopicT,
    pipeline: Pipeline,
    converter: SpanConverter,
    settings: Settings,
) -> None:
    """The OTLP agent: GenAI spans from ``topic`` become events for the same ``pipeline``.

    Records are converted in slices of ``worker.chunk_bytes``; each slice's dead letters
    (rejected spans) are published before its events are handled, and the batch is acknowledged
    only after every slice, as for the usage agent. Both agents share the pipeline's single
    ledger thread, so their writes never interleave.
    """

    @app.agent(topic)
    async def process_otlp_spans(stream: faust.StreamT[bytes]) -> None:
        batches = cast(faust.Stream[bytes], stream).take_events(
            settings.worker.batch_size, within=settings.worker.batch_within_s
        )
        async for events in batches:
            caught_up = batch_drained(app, events, settings.worker.batch_size)
            for chunk in chunk_by_bytes(raw_messages(events), settings.worker.chunk_bytes):
                # One export may hold thousands of spans: convert off the event loop so the
                # consumer keeps heartbeating.
                try:
                    converted = await asyncio.to_thread(convert_records, converter, chunk)
                except Exception as exc:  # a bug outside any one export: never acknowledge
                    pipeline.stop(f"unexpected error converting spans: {type(exc).__name__}")
                metrics.SPANS_IN.inc(converted.spans)
                await pipeline.publish_dead_letters(converted.dead_letters)
                if converted.messages:
                    await pipeline.handle(converted.messages, caught_up)
            record_lag(app, events)


def raw_messages(events: Sequence[Any]) -> list[RawMessage]:
    """Faust events as the pipeline's Faust-free input (value and Kafka origin)."""
    return [
        RawMessage(
            event.value,
            event.message.topic,
            event.message.partition,
            event.message.offset,
            is_ndjson(event.message.headers),
            event.message.timestamp,
        )
        for event in events
    ]


def batch_drained(app: faust.App, events: Sequence[Any], batch_size: int) -> bool:
    """Whether the stream has drained with this batch (``stream.drain.drained``: nothing known
    to follow it in its partitions, and the batch cut by time, not size)."""
    return drained(sum(partition_lags(app, events).values()), len(events), batch_size)


def partition_lags(app: faust.App, events: Sequence[Any]) -> dict[Any, int]:
    """Records known to follow the batch in each of its partitions (high-water mark minus the
    batch's last offset; a partition without a known high-water mark counts 0)."""
    last: dict[Any, int] = {}
    for event in events:
        message = event.message
        last[message.tp] = max(last.get(message.tp, -1), message.offset)
    lags: dict[Any, int] = {}
    for tp, offset in last.items():
        highwater = app.consumer.highwater(tp)
        lags[tp] = 0 if highwater is None else max(0, highwater - offset - 1)
    return lags


def record_lag(app: faust.App, events: Sequence[Any]) -> None:
    """Update the consumer-lag gauge from the batch's last offsets and the high-water marks."""
    for tp, lag in partition_lags(app, events).items():
        if app.consumer.highwater(tp) is not None:
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
