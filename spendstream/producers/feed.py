"""The decisions feed: a kafka-python consumer thread applying the decisions topic to a view.

A new process reads partition 0 from the beginning (no consumer group, nothing committed):
Tansu has no compaction and its ListOffsets(latest) is wrong (INFRA.md), so "start at the end"
cannot be trusted; reading the retained messages is exact and, with the topic's retention set
to a few minutes (docs/guardrails.md), short. The evaluating worker publishes a full snapshot
every ``snapshot_every_s``, so the view is complete as soon as it has read up to the latest
snapshot, and it counts as fresh only once a message published within ``stale_after_s`` has
been applied (catching up on old messages leaves it stale, and ``when_stale`` answers).
"""

from __future__ import annotations

import threading

from kafka import KafkaConsumer, TopicPartition
from pydantic import ValidationError

from spendstream.decisions import DecisionsMessage
from spendstream.producers.admission import AdmissionView
from spendstream.producers.log import get_logger

log = get_logger(__name__)


class DecisionFeed:
    """Consumes the decisions topic into ``view`` on a daemon thread until :meth:`close`."""

    def __init__(self, view: AdmissionView, bootstrap_servers: str, topic: str) -> None:
        self.view = view
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, name="spendstream-decisions", daemon=True)

    def start(self) -> DecisionFeed:
        self.thread.start()
        return self

    def _consumer(self) -> KafkaConsumer:
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            client_id="spendstream-admission",
        )
        partition = TopicPartition(self.topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        return consumer

    def run(self) -> None:
        consumer: KafkaConsumer | None = None
        while not self.stopped.is_set():
            try:
                if consumer is None:
                    consumer = self._consumer()
                for records in consumer.poll(timeout_ms=200).values():
                    for record in records:
                        self._apply(record.value)
            except Exception as exc:  # broker away: the view goes stale, when_stale answers
                log.warning("decisions feed failed; reconnecting", error=str(exc)[:200])
                if consumer is not None:
                    consumer.close()
                consumer = None
                self.stopped.wait(1.0)
        if consumer is not None:
            consumer.close()

    def _apply(self, value: bytes | None) -> None:
        if not value:
            return
        try:
            message = DecisionsMessage.model_validate_json(value)
        except ValidationError as exc:
            log.warning("unreadable decisions message skipped", error=str(exc)[:200])
            return
        self.view.apply(message)

    def close(self, timeout_s: float = 5.0) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(timeout_s)
