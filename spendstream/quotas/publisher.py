"""Publishes :class:`~spendstream.decisions.DecisionsMessage` values to the decisions topic.

kafka-python, ``acks="all"``, every message on partition 0 (readers rely on one total order).
A failed send drops the producer and raises; the next publish makes a new one (a kafka-python
producer does not always recover after a broker restart, see INFRA.md). Nothing is lost by a
failed publish: decisions are stored in ClickHouse and the next snapshot carries them all.
"""

from __future__ import annotations

import threading

from kafka import KafkaProducer

from spendstream.decisions import DecisionsMessage


class KafkaDecisionPublisher:
    def __init__(self, bootstrap_servers: str, topic: str, timeout_s: float = 10.0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.timeout_s = timeout_s
        self.producer: KafkaProducer | None = None
        self.lock = threading.Lock()

    def publish(self, message: DecisionsMessage) -> None:
        payload = message.model_dump_json().encode()
        with self.lock:
            if self.producer is None:
                self.producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap_servers,
                    acks="all",
                    linger_ms=0,
                    max_request_size=16 * 1024 * 1024,
                    client_id="spendstream-quotas",
                )
            try:
                self.producer.send(self.topic, payload, partition=0).get(self.timeout_s)
            except Exception:
                self.producer.close(timeout=1)
                self.producer = None
                raise

    def close(self) -> None:
        with self.lock:
            if self.producer is not None:
                self.producer.close(timeout=5)
                self.producer = None
