"""How far an ``event_time`` may lie from when it is received: one definition, used by the
worker (:mod:`spendstream.stream.processor`, against the Kafka record's time) and by HTTP ingest
(:mod:`spendstream.ingest.http`, against the clock, before it answers "accepted"), so an event
the API accepts is never one the worker then dead-letters for its time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from spendstream.events import EventError


class Timed(Protocol):
    @property
    def event_time(self) -> datetime: ...


def reference_time(record_timestamp: float | None, now: float) -> float:
    """The instant an event is judged against (and an event sent without ``event_time`` is
    dated at): its record's Kafka timestamp, capped at the worker's clock ``now``; ``now``
    when the record has none. Seconds since the epoch."""
    return now if record_timestamp is None or record_timestamp > now else record_timestamp


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """How far an ``event_time`` may lie before or after its record's reference time.

    The reference is the record's Kafka timestamp, capped at the worker's clock: a replay
    judges an event as the first delivery did, and a producer clock far ahead cannot widen the
    window. Events outside ``[reference - max_age, reference + max_future]`` are dead-lettered.
    """

    max_age: timedelta = timedelta(days=400)
    max_future: timedelta = timedelta(days=1)
    # The two in seconds, once: checked per event (two timedelta calls each cost ~0.1 µs).
    ahead_s: float = field(init=False, repr=False, compare=False)
    behind_s: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ahead_s", self.max_future.total_seconds())
        object.__setattr__(self, "behind_s", self.max_age.total_seconds())

    @classmethod
    def of(cls, max_age_days: float, max_future_s: float) -> TimeBounds:
        """The bounds of ``worker.event_max_age_days`` and ``worker.event_max_future_s``."""
        return cls(timedelta(days=max_age_days), timedelta(seconds=max_future_s))

    def check(self, event: Timed, record_timestamp: float | None, now: float) -> None:
        """Raise :class:`EventError` when ``event_time`` is out of bounds (``now``: the
        worker's clock, seconds since the epoch)."""
        # reference_time(), inlined: this runs for every event
        reference = now if record_timestamp is None or record_timestamp > now else record_timestamp
        seconds = event.event_time.timestamp()
        if reference - self.behind_s <= seconds <= reference + self.ahead_s:
            return  # the usual event: the same comparisons as below, both false
        if seconds > reference + self.ahead_s:
            raise EventError(
                f"event_time: {_iso(event.event_time)} is more than {self.max_future} ahead of "
                f"the record's time {_iso_ts(reference)} (worker.event_max_future_s)"
            )
        if seconds < reference - self.behind_s:
            raise EventError(
                f"event_time: {_iso(event.event_time)} is more than {self.max_age.days} days "
                f"before the record's time {_iso_ts(reference)} (worker.event_max_age_days)"
            )


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _iso_ts(seconds: float) -> str:
    return _iso(datetime.fromtimestamp(seconds, UTC))
