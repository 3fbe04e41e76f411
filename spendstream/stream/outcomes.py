"""The outcome topic's processor: outcome events go through the same pipeline as usage events.

A line becomes an :class:`~spendstream.sinks.entry.OutcomeEntry` when it is a valid outcome
(:func:`spendstream.events.parse_outcome`) whose ``event_time`` lies within the worker's
:class:`~spendstream.stream.processor.TimeBounds`; anything else is dead-lettered with its reason.
Storing, retrying outages, isolating rows the table rejects and the dead-letter limit are the
pipeline's (``stream.pipeline.StreamPipeline``), as for usage events.
"""

from __future__ import annotations

from spendstream.events import parse_outcome
from spendstream.sinks.entry import KafkaOrigin, OutcomeEntry
from spendstream.stream.processor import LineProcessor, RawMessage, TimeBounds


class OutcomeProcessor(LineProcessor[OutcomeEntry]):
    """Outcome events: validated and bounded in time (no price, no required tags)."""

    def __init__(self, bounds: TimeBounds | None = None) -> None:
        self.bounds = bounds or TimeBounds()

    def entry(self, raw: bytes, message: RawMessage, line: int | None, now: float) -> OutcomeEntry:
        event = parse_outcome(raw)
        self.bounds.check(event, message.timestamp, now)
        return OutcomeEntry(
            event, KafkaOrigin(message.topic, message.partition, message.offset, line)
        )
