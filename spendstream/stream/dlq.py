"""The dead-letter limit: a brake for when dead letters say the code, not the data, is broken.

Modelled on arroyo's ``DlqLimit(max_invalid_ratio, max_consecutive_count)``: bad traffic from a
producer is dead-lettered and the stream goes on, but a deployment that rejects (nearly) every
event is more likely a bug on our side, and dead-lettering everything would bury good events in
the DLQ. Past the limit the worker stops loudly instead (see ``Pipeline``): nothing of the batch
in hand is acknowledged, so after the fix it replays.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from spendstream.errors import SpendstreamError


@dataclass(frozen=True, slots=True)
class DlqLimit:
    """Stop when more than ``max_ratio`` of the last ``ratio_window`` events were dead-lettered
    (judged once that many were seen), or when ``max_consecutive`` events in a row were
    (0: no consecutive limit). ``max_ratio=1`` disables the ratio."""

    max_ratio: float = 0.9
    ratio_window: int = 100_000
    max_consecutive: int = 10_000


class DlqLimitExceeded(SpendstreamError):
    """The dead-letter limit was crossed; the message says which and with what numbers."""


class DlqGuard:
    """Counts events and dead letters against a :class:`DlqLimit` (one per worker process)."""

    def __init__(self, limit: DlqLimit) -> None:
        self.limit = limit
        self.run = 0  # dead letters since the last accepted event
        self._slices: deque[tuple[int, int]] = deque()  # (events, dead letters) per slice
        self._events = 0
        self._letters = 0

    def record(self, events: int, letters: int, leading: int, longest: int, trailing: int) -> None:
        """Account a processed slice (runs as in ``ProcessedBatch``); raise
        :class:`DlqLimitExceeded` when the limit is crossed."""
        if letters == events:
            self.run += letters
        else:
            self._check_run(max(self.run + leading, longest))
            self.run = trailing
        self._check_run(self.run)
        self._add(events, letters)

    def record_rejected(self, letters: int) -> None:
        """Account events already counted by :meth:`record` that the ledger then rejected."""
        self.run += letters
        self._check_run(self.run)
        self._add(0, letters)

    def _add(self, events: int, letters: int) -> None:
        self._slices.append((events, letters))
        self._events += events
        self._letters += letters
        window = self.limit.ratio_window
        while self._slices and self._events - self._slices[0][0] >= window:
            old_events, old_letters = self._slices.popleft()
            self._events -= old_events
            self._letters -= old_letters
        if self.limit.max_ratio < 1 and self._events >= window:
            ratio = self._letters / self._events
            if ratio > self.limit.max_ratio:
                raise DlqLimitExceeded(
                    f"{self._letters} of the last {self._events} events were dead-lettered "
                    f"({ratio:.1%} > worker.dlq_max_ratio {self.limit.max_ratio:.0%})"
                )

    def _check_run(self, run: int) -> None:
        if self.limit.max_consecutive and run >= self.limit.max_consecutive:
            raise DlqLimitExceeded(
                f"{run} events in a row were dead-lettered "
                f"(worker.dlq_max_consecutive = {self.limit.max_consecutive})"
            )
