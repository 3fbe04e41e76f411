"""The Faust side of the stream: the app, its two topics, the dead-letter publisher and the agent.

Faust runs at-least-once (exactly-once needs InitProducerId, which Tansu lacks; see INFRA.md).
Spend windows are not Faust tables: tables over-count on rebalances and their changelog recovery
is wrong on Tansu, so minute/hour/day windows are recomputed in ClickHouse from the deduplicated
ledger for every batch (see ``sinks.ledger``).

Nothing here wires parts together: :mod:`spendstream.worker.build` creates the app and topics,
hands the dead-letter publisher to the :class:`~spendstream.stream.pipeline.Pipeline`'s
constructor, then declares the agent over that pipeline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import faust

from spendstream.config import Settings
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


@dataclass(frozen=True)
class Topics:
    usage: faust.TopicT
    dead_letters: faust.TopicT
    outcomes: faust.TopicT


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    return Topics(
        usage=app.topic(settings.kafka.usage_topic, value_serializer="raw"),
        dead_letters=app.topic(settings.kafka.dead_letter_topic, value_serializer="raw"),
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
    app: faust.App, topic: faust.TopicT, pipeline: Pipeline, settings: Settings
) -> None:
    """The one agent: batches of raw messages from ``topic`` handed to ``pipeline``."""

    @app.agent(topic)
    async def process_usage(stream: faust.StreamT[bytes]) -> None:
        # take_events is on the concrete Stream (it yields events, which carry Kafka origins).
        batches = cast(faust.Stream[bytes], stream).take_events(
            settings.worker.batch_size, within=settings.worker.batch_within_s
        )
        async for events in batches:
            await pipeline.handle([raw_message(event) for event in events])
            record_lag(app, events)


def declare_outcome_agent(
    app: faust.App,
    topic: faust.TopicT,
    handle: Callable[[list[RawMessage]], Awaitable[None]],
    settings: Settings,
) -> None:
    """The outcome agent: batches of raw messages from ``topic`` handed to ``handle`` (the
    batch is acknowledged once ``handle`` returns)."""

    @app.agent(topic)
    async def process_outcomes(stream: faust.StreamT[bytes]) -> None:
        batches = cast(faust.Stream[bytes], stream).take_events(
            settings.worker.batch_size, within=settings.worker.batch_within_s
        )
        async for events in batches:
            await handle([raw_message(event) for event in events])


def raw_message(event: Any) -> RawMessage:
    """A Faust event as the Faust-free :class:`RawMessage`."""
    message = event.message
    return RawMessage(
        event.value,
        message.topic,
        message.partition,
        message.offset,
        is_ndjson(message.headers),
        message.timestamp,
    )


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
