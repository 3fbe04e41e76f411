"""The time of an event sent with ``event_id`` but no ``event_time``: the same for every copy.

Such an event is stamped by the worker. Its first copy gets the record's time (its Kafka
timestamp, capped at the worker's clock: the reference :class:`~spendstream.event_bounds.TimeBounds`
judges against, so a replay of the same record gets the same time); a later copy of the same id
(an app's or HTTP client's retry, a redelivery in a batch composed differently) gets the time its
first copy got, found

1. in this worker's memory of the ids it stamped recently (copies in flight, slices not written
   yet), else
2. in the ledger (``sinks.first_times``), within ``lookback`` before the copy's own stamp,

else it is a new event and keeps its own stamp. Only batches holding such events pay the read;
events that carry ``event_time`` never reach this module. The guarantee and its bounds (a copy
more than ``lookback`` after the first, or racing it on another worker before it is written, is
a second event) are in docs/event-format.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from spendstream import retry
from spendstream.stream.isolation import StoppedDuringOutage

Lookup = Callable[[Sequence[str], datetime], Mapping[str, datetime]]
REMEMBERED_IDS = 100_000  # ~15 MB: far more than a slice in flight; the ledger covers the rest
DEFAULT_LOOKBACK = timedelta(days=7)  # Kafka's default retention: no redelivery comes later


class FirstStamps:
    """``event_id -> event_time`` of the time-less events this worker stamped (see module doc).

    ``lookup`` reads the ledger (None: memory only, as in tests of the processor alone);
    ``transient`` tells an outage (retried with back-off, like ledger writes, until ``stopping``)
    from a bug (raised)."""

    def __init__(
        self,
        lookup: Lookup | None,
        lookback: timedelta = DEFAULT_LOOKBACK,
        transient: Callable[[BaseException], bool] = lambda exc: False,
        retry_max_s: float = 30.0,
        stopping: Callable[[], bool] = lambda: False,
        remembered: int = REMEMBERED_IDS,
    ) -> None:
        self.lookup = lookup
        self.lookback = lookback
        self.transient = transient
        self.retry_max_s = retry_max_s
        self.stopping = stopping
        self.remembered = remembered
        self.recent: dict[str, datetime] = {}  # insertion order: the oldest is evicted first

    def resolve(self, stamps: Mapping[str, datetime]) -> dict[str, datetime]:
        """The time each id of ``stamps`` (id -> its provisional stamp) must carry: its first
        copy's when one is known, else its own stamp (then remembered as the first)."""
        times = {event_id: self.recent[event_id] for event_id in stamps if event_id in self.recent}
        unknown = [event_id for event_id in stamps if event_id not in times]
        if unknown and self.lookup is not None:
            since = min(stamps[event_id] for event_id in unknown) - self.lookback
            times.update(self._read(unknown, since))
        for event_id, stamp in stamps.items():
            self._remember(event_id, times.setdefault(event_id, stamp))
        return times

    def _read(self, ids: Sequence[str], since: datetime) -> Mapping[str, datetime]:
        assert self.lookup is not None
        policy = retry.storage_blocking(
            self.transient,
            self.retry_max_s,
            "reading first event times failed; retrying",
            self._back_off,
        )
        return policy(self.lookup, ids, since)

    def _back_off(self, delay_s: float) -> None:
        """Wait ``delay_s`` before a retry (on the parse thread: back-pressure, as a ledger
        write's retry); raise :class:`StoppedDuringOutage` once the worker is stopping."""
        deadline = time.monotonic() + delay_s
        while not self.stopping():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.25))
        raise StoppedDuringOutage(
            "stopping during a ledger outage (reading first event times): the batch in hand "
            "is not acknowledged and is consumed again at the next start"
        )

    def _remember(self, event_id: str, moment: datetime) -> None:
        recent = self.recent
        recent.pop(event_id, None)  # re-inserted: the newest
        recent[event_id] = moment
        if len(recent) > self.remembered:
            del recent[next(iter(recent))]
