"""Batch processing, free of Faust: raw messages in, ledger entries and dead letters out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from spendstream.events import EventError, parse_event
from spendstream.sinks.ledger import KafkaOrigin, LedgerEntry
from spendstream.stream.deadletter import DeadLetter
from spendstream.stream.pricing import Pricer


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A consumed Kafka record: value bytes and where it came from."""

    value: bytes | None
    topic: str
    partition: int
    offset: int


@dataclass
class ProcessedBatch:
    entries: list[LedgerEntry] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicates_in_batch: int = 0


class BatchProcessor:
    """Validates, deduplicates (within the batch) and prices a batch of raw messages.

    Deduplication across batches is the ledger's job (see sinks.migrations); dropping in-batch
    repeats here only saves work.
    """

    def __init__(self, pricer: Pricer) -> None:
        self.pricer = pricer

    def process(self, messages: Sequence[RawMessage]) -> ProcessedBatch:
        result = ProcessedBatch()
        seen: set[str] = set()
        for message in messages:
            raw = message.value or b""
            try:
                if not raw:
                    raise EventError("empty message (no value)")
                event = parse_event(raw)
            except EventError as exc:
                result.dead_letters.append(
                    DeadLetter.for_payload(
                        raw, exc.reason, message.topic, message.partition, message.offset
                    )
                )
                continue
            if event.event_id in seen:
                result.duplicates_in_batch += 1
                continue
            seen.add(event.event_id)
            origin = KafkaOrigin(message.topic, message.partition, message.offset)
            result.entries.append(LedgerEntry(event, self.pricer.rate(event), origin))
        return result
