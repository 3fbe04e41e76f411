"""What one process recorded per quota key, and which part of it the ledger already holds.

A decision's ``used`` is the ledger at ``as_of``; this process adds its own calls the ledger
did not hold then. Which ones those are is decided by offsets, not by clocks:

- the sender reports the (topic, partition, offset) the broker gave each record
  (:meth:`OwnUsage.delivered`);
- a decision says how far the ledger was complete when it was read
  (``DecisionsMessage.stored``: per partition, the highest offset processed);
- a record at or below that point is in ``used`` and stops counting locally (*covered*); a
  record not acknowledged yet, or above the point, keeps counting, however far the worker lags.

Coverage is sticky per key: a later decision of the key read a ledger holding at least as much
(the ledger only grows), so the highest point heard per partition applies to it too.

A decision from a worker that predates ``stored`` (None) falls back to the clock: records noted
before ``as_of - overlap_s`` count as covered (right only while the worker keeps up).

Bounds: records awaiting their offset are capped (:data:`MAX_AWAITING`; beyond, the oldest are
never covered, so they keep counting: only ever towards denying), and uncovered records per
partition are merged pairwise past :data:`MAX_PLACED` (a merged pair is covered once its higher
offset is: later, never earlier).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping

Where = tuple[str, int]  # (topic, partition)
Shares = tuple[tuple[str, int], ...]  # (decision key, units) of one recorded event
MAX_AWAITING = 100_000
MAX_PLACED = 4_096


def merge_pairs(heap: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Halve a list of (offset, units) by merging neighbours into (higher offset, sum)."""
    ordered = sorted(heap)
    merged = [
        (ordered[min(i + 1, len(ordered) - 1)][0], sum(u for _, u in ordered[i : i + 2]))
        for i in range(0, len(ordered), 2)
    ]
    heapq.heapify(merged)
    return merged


class LocalUsage:
    """One key: every unit this process recorded (``total``), the part known to be in the
    ledger (``covered``), and the records still waiting for a completeness point."""

    __slots__ = ("checkpoints", "covered", "horizon", "placed", "total")

    def __init__(self) -> None:
        self.total = 0
        self.covered = 0
        self.checkpoints: deque[tuple[int, int]] = deque()  # (second, total) for old workers
        self.placed: dict[Where, list[tuple[int, int]]] = {}  # min-heaps of (offset, units)
        self.horizon: dict[Where, int] = {}  # the highest completeness point heard

    def add(self, second: int, units: int) -> None:
        self.total += units
        if self.checkpoints and self.checkpoints[-1][0] == second:
            self.checkpoints[-1] = (second, self.total)
        else:
            self.checkpoints.append((second, self.total))

    def total_before(self, moment: float) -> int:
        """Units recorded in whole seconds before ``moment`` (older checkpoints are pruned)."""
        second = int(moment)
        base = 0
        while self.checkpoints and self.checkpoints[0][0] < second:
            if len(self.checkpoints) > 1 and self.checkpoints[1][0] < second:
                self.checkpoints.popleft()
                continue
            base = self.checkpoints[0][1]
            break
        return base

    def place(self, where: Where, offset: int, units: int) -> bool:
        """A record got its offset; True when the point already heard covers it."""
        if offset <= self.horizon.get(where, -1):
            self.covered += units
            return True
        heap = self.placed.setdefault(where, [])
        if len(heap) >= MAX_PLACED:
            heap = self.placed[where] = merge_pairs(heap)
        heapq.heappush(heap, (offset, units))
        return False

    def cover(self, stored: Mapping[Where, int]) -> int:
        """Raise the completeness point to ``stored``; returns ``covered`` afterwards."""
        for where, offset in stored.items():
            if offset <= self.horizon.get(where, -1):
                continue
            self.horizon[where] = offset
            heap = self.placed.get(where)
            while heap and heap[0][0] <= offset:
                self.covered += heapq.heappop(heap)[1]
        return self.covered


class OwnUsage:
    """Per key :class:`LocalUsage`, and the recorded events still waiting for their offset.

    Not thread-safe: the admission view calls it under its lock."""

    def __init__(self) -> None:
        self.keys: dict[str, LocalUsage] = {}
        self.awaiting: OrderedDict[bytes, Shares] = OrderedDict()

    def note(self, second: int, shares: Shares, payload: bytes | None) -> None:
        """Count a recorded event; ``payload`` (its bytes as sent) links it to its offset."""
        for dkey, units in shares:
            local = self.keys.get(dkey)
            if local is None:
                local = self.keys[dkey] = LocalUsage()
            local.add(second, units)
        if payload is not None:
            self.awaiting[payload] = shares
            if len(self.awaiting) > MAX_AWAITING:
                self.awaiting.popitem(last=False)

    def delivered(self, payloads: Iterable[bytes], where: Where, offset: int) -> set[str]:
        """The broker stored ``payloads`` at ``offset``; returns the keys whose covered usage
        grew (their current decision already covered the offset)."""
        grown: set[str] = set()
        for payload in payloads:
            shares = self.awaiting.pop(payload, None)
            for dkey, units in shares or ():
                if self.keys[dkey].place(where, offset, units):
                    grown.add(dkey)
        return grown
