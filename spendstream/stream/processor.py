"""Batch processing, free of Faust: raw messages in, ledger entries and dead letters out.

A Kafka message holds one event (a JSON object), or several when the producer marks it with the
header ``content-type: application/x-ndjson`` (one JSON object per line; the SDK packs events this
way to cut per-message overhead in Kafka and in the consumer). Each event is validated on its own:
one bad line dead-letters that line only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from spendstream.events import EventError, parse_event
from spendstream.pricing import Pricer
from spendstream.sinks.entry import KafkaOrigin, LedgerEntry
from spendstream.stream.deadletter import DeadLetter

CONTENT_TYPE_HEADER = "content-type"
NDJSON = b"application/x-ndjson"


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A consumed Kafka record: value bytes, whether it packs several events, and its origin."""

    value: bytes | None
    topic: str
    partition: int
    offset: int
    ndjson: bool = False

    def payloads(self) -> Iterator[tuple[int, bytes]]:
        """``(index, event payload)`` for each event the message holds."""
        raw = self.value or b""
        if not self.ndjson:
            yield 0, raw
            return
        for index, line in enumerate(raw.split(b"\n")):
            if line.strip():
                yield index, line


def is_ndjson(headers: object) -> bool:
    """Whether Kafka ``headers`` (a list of pairs or a mapping) mark a multi-event message."""
    pairs = headers.items() if isinstance(headers, dict) else headers or ()
    return any(
        key == CONTENT_TYPE_HEADER and value == NDJSON
        for key, value in pairs  # type: ignore[attr-defined]
    )


@dataclass
class ProcessedBatch:
    entries: list[LedgerEntry] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicates_in_batch: int = 0
    events_seen: int = 0


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
        rate = self.pricer.rate
        for message in messages:
            for index, raw in message.payloads():
                result.events_seen += 1
                try:
                    if not raw:
                        raise EventError("empty message (no value)")
                    event = parse_event(raw)
                except EventError as exc:
                    result.dead_letters.append(
                        DeadLetter.for_payload(
                            raw,
                            exc.reason,
                            message.topic,
                            message.partition,
                            message.offset,
                            index if message.ndjson else None,
                        )
                    )
                    continue
                if event.event_id in seen:
                    result.duplicates_in_batch += 1
                    continue
                seen.add(event.event_id)
                origin = KafkaOrigin(message.topic, message.partition, message.offset)
                result.entries.append(LedgerEntry(event, rate(event), origin))
        return result
