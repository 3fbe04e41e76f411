"""Batch processing, free of Faust: raw messages in, entries and dead letters out.

:class:`LineProcessor` holds what every topic shares (lines, dead letters, runs, in-batch
duplicates); a subclass per topic turns one line into its entry: :class:`BatchProcessor` for usage
events (priced ledger entries), ``stream.outcomes.OutcomeProcessor`` for outcome events.

A Kafka message holds one event (a JSON object), or several when the producer marks it with the
header ``content-type: application/x-ndjson`` (one JSON object per line; the SDK packs events this
way to cut per-message overhead in Kafka and in the consumer). Each event is validated on its own:
one bad line dead-letters that line only.

Processing never fails on the data: whatever one line raises (a validation error, or anything
unexpected while parsing or pricing it) dead-letters that line with the error as its reason. The
verdict depends only on the line and its record's timestamp, so a replay decides the same way.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from spendstream.event_bounds import TimeBounds, reference_time
from spendstream.events import EventError, UsageEvent, UsageRecord, parse_event
from spendstream.pricing import Pricer
from spendstream.pricing.scaled import ScaledPricer
from spendstream.sinks.entry import KafkaOrigin, LedgerEntry
from spendstream.stream.deadletter import DeadLetter
from spendstream.stream.fastpath import FastDecoder

CONTENT_TYPE_HEADER = "content-type"
NDJSON = b"application/x-ndjson"


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A consumed Kafka record: value bytes, whether it packs several events, its origin and
    its timestamp (seconds since the epoch, as the broker reports it; None when unknown)."""

    value: bytes | None
    topic: str
    partition: int
    offset: int
    ndjson: bool = False
    timestamp: float | None = None

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


class Event(Protocol):
    """What the pipeline needs of a validated event of any topic."""

    @property
    def event_id(self) -> str: ...

    @property
    def event_time(self) -> datetime: ...

    def to_json_bytes(self) -> bytes: ...


class Entry(Protocol):
    """A validated event and where it was read from: what a processor hands its sink."""

    @property
    def event(self) -> Event: ...

    @property
    def origin(self) -> KafkaOrigin: ...


E = TypeVar("E", bound=Entry)


@dataclass
class ProcessedBatch(Generic[E]):
    """What a slice of messages became. ``events_seen`` counts events (lines), not messages.

    The ``*_run`` fields describe dead letters in a row (no accepted event between them), for
    the dead-letter limit: the run at the start, the longest inside, and the run at the end.
    """

    entries: list[E] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicates_in_batch: int = 0
    events_seen: int = 0
    leading_run: int = 0
    longest_run: int = 0
    trailing_run: int = 0


class LineProcessor(ABC, Generic[E]):
    """Turns every line of a slice into an entry (:meth:`entry`, per topic), an in-batch
    duplicate, or a dead letter with its reason. Does no I/O.

    Deduplication across batches is the sink's job (see sinks.migrations); dropping in-batch
    repeats here only saves work.
    """

    def process(self, messages: Sequence[RawMessage]) -> ProcessedBatch[E]:
        """Every line of ``messages`` becomes an entry, an in-batch duplicate, or a dead letter
        with its reason; never raises on the data."""
        result: ProcessedBatch[E] = ProcessedBatch()
        seen: set[str] = set()
        accepted_any = False
        now = time.time()
        for message in messages:
            for index, raw in message.payloads():
                result.events_seen += 1
                line = index if message.ndjson else None
                try:
                    if not raw:
                        raise EventError("empty message (no value)")
                    entry = self.entry(raw, message, line, now)
                except Exception as exc:  # whatever one line raises is that line's failure alone
                    reason = exc.reason if isinstance(exc, EventError) else _unexpected(exc)
                    result.dead_letters.append(
                        DeadLetter.for_payload(
                            raw, reason, message.topic, message.partition, message.offset, line
                        )
                    )
                    result.trailing_run += 1
                    result.longest_run = max(result.longest_run, result.trailing_run)
                    continue
                if not accepted_any:
                    accepted_any, result.leading_run = True, result.trailing_run
                result.trailing_run = 0
                if entry.event.event_id in seen:
                    result.duplicates_in_batch += 1
                    continue
                seen.add(entry.event.event_id)
                result.entries.append(entry)
        if not accepted_any:
            result.leading_run = result.trailing_run
        return result

    @abstractmethod
    def entry(self, raw: bytes, message: RawMessage, line: int | None, now: float) -> E:
        """The entry of one non-empty line; raises (``EventError`` with its reason) to refuse
        it. ``now``: the worker's clock, for :class:`TimeBounds`."""


class TimeResolver(Protocol):
    """The times a batch's time-less events must carry (``stream.stamps.FirstStamps``)."""

    def resolve(self, stamps: dict[str, datetime]) -> dict[str, datetime]: ...


class BatchProcessor(LineProcessor[LedgerEntry]):
    """Usage events: validated, bounded in time, required tags checked, priced.

    An event with ``event_id`` but no ``event_time`` is stamped with its record's time (the
    Kafka timestamp capped at the worker's clock, as :class:`TimeBounds` judges it); then, once
    per slice, ``stamps`` gives each such event the time its first copy got, if one was seen
    (``stream.stamps``): a re-sent copy stays the same ledger row.
    """

    def __init__(
        self,
        pricer: Pricer,
        bounds: TimeBounds | None = None,
        missing_tags: Callable[[dict[str, str]], list[str]] | None = None,
        fast_path: bool = True,
        stamps: TimeResolver | None = None,
    ) -> None:
        """``fast_path``: decode with msgspec and price in scaled integers where that is proven
        to decide as ``parse_event`` and ``Pricer.rate`` do (``stream.fastpath``,
        ``pricing.scaled``); False runs only the reference path (benchmarks compare both)."""
        self.pricer = pricer
        self.bounds = bounds or TimeBounds()
        # Set when [insights] untagged_policy = "dead_letter": events lacking a required tag
        # are refused (by default they are stored and reported as unallocated).
        self.missing_tags = missing_tags
        self.decoder = FastDecoder() if fast_path else None
        self.rater: Pricer | ScaledPricer = ScaledPricer(pricer) if fast_path else pricer
        self.stamps = stamps
        # This slice's time-less events: id -> the stamp its first line got, and which events.
        self.untimed: dict[str, datetime] = {}
        self.untimed_events: dict[int, UsageEvent] = {}  # by id(): held, so ids stay unique

    def process(self, messages: Sequence[RawMessage]) -> ProcessedBatch[LedgerEntry]:
        self.untimed, self.untimed_events = {}, {}
        result = super().process(messages)
        if self.untimed and self.stamps is not None:
            self._restamp(result, self.stamps.resolve(self.untimed))
        return result

    def _restamp(self, result: ProcessedBatch[LedgerEntry], times: dict[str, datetime]) -> None:
        """Give each time-less entry its first copy's time (re-priced at that time). The bounds
        are not judged again: the first copy's time was, when it was stamped."""
        kept: list[LedgerEntry] = []
        for entry in result.entries:
            event = entry.event
            if id(event) in self.untimed_events and times[event.event_id] != event.event_time:
                assert isinstance(event, UsageEvent)  # only parse_event leaves event_time out
                first = event.model_copy(update={"event_time": times[event.event_id]})
                try:
                    entry = LedgerEntry(first, self.rater.rate(first), entry.origin)
                except Exception as exc:  # as in process: this line's failure alone
                    reason = exc.reason if isinstance(exc, EventError) else _unexpected(exc)
                    origin = entry.origin
                    result.dead_letters.append(
                        DeadLetter.for_payload(
                            first.to_json_bytes(),
                            reason,
                            origin.topic,
                            origin.partition,
                            origin.offset,
                            origin.index,
                        )
                    )
                    continue
            kept.append(entry)
        result.entries = kept

    def _stamped(self, event: UsageEvent, message: RawMessage, now: float) -> UsageEvent:
        """``event`` (sent without ``event_time``) at its record's reference time, in the
        ledger's milliseconds; remembered for :meth:`_restamp`."""
        stamp = reference_time(message.timestamp, now)
        moment = datetime.fromtimestamp(int(stamp * 1000) / 1000, UTC)
        stamped = event.model_copy(update={"event_time": moment})
        self.untimed.setdefault(event.event_id, moment)
        self.untimed_events[id(stamped)] = stamped
        return stamped

    def entry(self, raw: bytes, message: RawMessage, line: int | None, now: float) -> LedgerEntry:
        # The fast decode takes what it can prove valid; everything else (and every refusal,
        # with its reason) is parse_event's.
        event: UsageRecord | None = self.decoder.decode(raw) if self.decoder else None
        if event is None:
            event = parse_event(raw)
            if "event_time" not in event.model_fields_set:  # the fast path never leaves it out
                event = self._stamped(event, message, now)
        self.bounds.check(event, message.timestamp, now)
        if self.missing_tags is not None:
            missing = self.missing_tags(event.tags)
            if missing:
                raise EventError(
                    f"tags: required tag(s) {', '.join(missing)} missing (insights.required_tags"
                    " with untagged_policy = 'dead_letter'); tag the event or change the policy"
                )
        origin = KafkaOrigin(message.topic, message.partition, message.offset, line)
        return LedgerEntry(event, self.rater.rate(event), origin)


def _unexpected(exc: Exception) -> str:
    return f"could not process the event ({type(exc).__name__}: {exc})"
