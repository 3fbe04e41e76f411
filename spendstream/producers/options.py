"""Recorder options: everything tunable about the producer SDK, with the defaults we measured."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from spendstream.config import Settings, default_spool_dir


class RecorderOptions(BaseModel):
    """Options for :class:`~spendstream.producers.Recorder` (keyword arguments of the same name).

    Kafka-side choices are fixed on purpose: ``acks="all"`` (acks=0 loses records on Tansu, see
    INFRA.md) and no idempotence (kafka-python's idempotent producer never recovers after a broker
    restart; duplicates are removed by event_id in the ledger, losses cannot be repaired).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "spendstream.usage.v1"
    outcome_topic: str = "spendstream.outcomes.v1"
    client_id: str = "spendstream"
    # Per-user by default ($XDG_STATE_HOME/spendstream/spool); one slot per process under it.
    spool_dir: str = Field(default_factory=default_spool_dir)
    spool_max_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024 * 1024
    fsync_interval_s: Annotated[float, Field(ge=0)] = 1.0
    queue_size: Annotated[int, Field(ge=1)] = 100_000
    record_timeout_ms: Annotated[float, Field(ge=0)] = 5.0
    linger_ms: Annotated[int, Field(ge=0)] = 20
    compression: str | None = "lz4"
    batch_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024
    # Events per Kafka message (NDJSON with a content-type header, see stream.processor); 1 sends
    # one event per message for consumers that expect that. Packing cuts the per-message cost in
    # the producer's I/O thread and in the Faust worker (about 65 µs per message there).
    pack_max_events: Annotated[int, Field(ge=1, le=10_000)] = 100
    pack_max_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024
    partition_key_tag: str | None = "team"
    request_timeout_ms: Annotated[int, Field(ge=100)] = 5_000
    delivery_timeout_ms: Annotated[int, Field(ge=100)] = 10_000
    stall_ms: Annotated[int, Field(ge=10)] = 2_000
    max_block_ms: Annotated[int, Field(ge=0)] = 1_000
    connect_timeout_ms: Annotated[int, Field(ge=100)] = 2_000
    replay_batch: Annotated[int, Field(ge=1)] = 2_000
    recreate_after_s: Annotated[float, Field(gt=0)] = 10.0
    max_backoff_s: Annotated[float, Field(gt=0)] = 5.0
    default_tags: dict[str, str] = Field(default_factory=dict)
    # Admission (recorder.admit / guard): the decisions topic is read from the first admit()
    # call, or from construction with admission=True (so the view is warm before the first call).
    admission: bool = False
    decisions_topic: str = "spendstream.quota.decisions.v1"
    admission_stale_after_s: Annotated[float, Field(gt=0)] = 15.0
    # Only for decisions from workers that predate completeness points (DecisionsMessage.stored):
    # own events up to this much older than such a decision's as_of still count locally.
    admission_overlap_s: Annotated[float, Field(ge=0)] = 1.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> RecorderOptions:
        """Options from ``Settings.kafka`` and ``Settings.producer``; ``overrides`` win.

        Every ``producer.*`` key whose name is a field here is used, so new producer settings
        only need to be added to ``ProducerSettings`` under the same name.
        """
        kafka = settings.kafka
        values: dict[str, object] = {
            "bootstrap_servers": kafka.bootstrap_servers,
            "topic": kafka.usage_topic,
            "outcome_topic": kafka.outcome_topic,
            "client_id": kafka.client_id,
            "decisions_topic": settings.guardrails.decisions_topic,
            "admission_stale_after_s": settings.guardrails.stale_after_s,
        }
        for name, value in settings.producer.model_dump().items():
            if name in cls.model_fields:
                values[name] = value
        values.update(overrides)
        return cls.model_validate(values)


def producer_config(options: RecorderOptions) -> dict[str, Any]:
    """KafkaProducer arguments for ``options``: acks=all (acks=0 loses records on Tansu, see
    INFRA.md), no idempotence (it never recovers after a broker restart; the ledger dedups)."""
    return {
        "bootstrap_servers": options.bootstrap_servers.split(","),
        "client_id": options.client_id,
        "acks": "all",
        "enable_idempotence": False,
        "linger_ms": options.linger_ms,
        "compression_type": options.compression,
        "batch_size": options.batch_bytes,
        "request_timeout_ms": options.request_timeout_ms,
        "delivery_timeout_ms": max(
            options.delivery_timeout_ms, options.request_timeout_ms + options.linger_ms
        ),
        "max_block_ms": options.max_block_ms,
        "bootstrap_timeout_ms": options.connect_timeout_ms,
        "reconnect_backoff_max_ms": 1_000,
    }
