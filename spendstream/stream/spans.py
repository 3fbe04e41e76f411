"""OTLP span records to the usage pipeline's input, free of Faust.

Each Kafka record of the OTLP topic becomes one multi-event (NDJSON) :class:`RawMessage` holding
the usage events of its GenAI spans, with the record's own topic, partition and offset, so the
:class:`~spendstream.stream.pipeline.Pipeline` validates, prices, deduplicates and rolls them up
exactly like SDK events. Rejected GenAI spans, and records that are not OTLP at all, become
dead letters naming the span (``source_index`` is the span's position in the export).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from spendstream.ingest.genai import SpanConverter
from spendstream.ingest.otlp import OtlpDecodeError
from spendstream.stream.deadletter import DeadLetter
from spendstream.stream.processor import RawMessage


@dataclass
class SpanBatch:
    """A batch of OTLP records converted: pipeline input and dead letters, plus counts."""

    messages: list[RawMessage] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    spans: int = 0
    events: int = 0


def convert_records(converter: SpanConverter, records: Sequence[RawMessage]) -> SpanBatch:
    """Convert OTLP records (one export each); never raises on the data: whatever one export
    raises (not OTLP, or anything unexpected while converting it) dead-letters that export."""
    batch = SpanBatch()
    for record in records:
        origin = (record.topic, record.partition, record.offset)
        try:
            conversion = converter.convert(record.value or b"")
        except Exception as exc:  # one export's failure alone, as for a usage line
            reason = str(exc) if isinstance(exc, OtlpDecodeError) else _unexpected(exc)
            batch.dead_letters.append(DeadLetter.for_payload(record.value or b"", reason, *origin))
            continue
        batch.spans += conversion.spans
        for rejected in conversion.rejected:
            payload = json.dumps(rejected.span.summary(), default=str).encode()
            batch.dead_letters.append(
                DeadLetter.for_payload(payload, rejected.reason, *origin, rejected.span.index)
            )
        if conversion.events:
            batch.events += len(conversion.events)
            value = b"\n".join(event.to_json_bytes() for event in conversion.events)
            # replace() keeps every other field of the record (e.g. its timestamp).
            batch.messages.append(dataclasses.replace(record, value=value, ndjson=True))
    return batch


def _unexpected(exc: Exception) -> str:
    return f"could not convert the export ({type(exc).__name__}: {exc})"
