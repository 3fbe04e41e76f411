"""How far the ledger is complete: per (topic, partition), the highest offset stored.

The worker consumes each partition in offset order and writes its slices in that order on one
ledger thread, and a partition's new owner after a rebalance starts from the last committed
offset (committed only once stored). So once a record at offset ``o`` of partition ``p`` is in
the ledger, every record of ``p`` below ``o`` was processed too (stored, or dead-lettered, or a
duplicate of a stored event). The highest stored offset per partition is therefore a sound
completeness point, and it only grows: a statement "complete through ``o`` at time ``t``" stays
true afterwards.

Each worker knows the partitions it consumed; decisions carry what their publisher knows
(``DecisionsMessage.stored``), and readers keep the highest point they have heard per key.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from spendstream.decisions import StoredOffsets
from spendstream.sinks.entry import LedgerEntry


class LedgerProgress:
    """Thread-safe: the pipeline's observer notes stored slices, the quota thread reads."""

    def __init__(self) -> None:
        self._stored: dict[str, dict[int, int]] = {}
        self._lock = threading.Lock()

    def note(self, entries: Sequence[LedgerEntry]) -> None:
        """Record a slice the ledger now holds (call only after its insert returned)."""
        highest: dict[tuple[str, int], int] = {}
        for entry in entries:
            origin = entry.origin
            where = (origin.topic, origin.partition)
            if origin.offset > highest.get(where, -1):
                highest[where] = origin.offset
        with self._lock:
            for (topic, partition), offset in highest.items():
                offsets = self._stored.setdefault(topic, {})
                if offset > offsets.get(partition, -1):
                    offsets[partition] = offset

    def snapshot(self) -> tuple[StoredOffsets, ...]:
        """What is stored now; take it *before* reading the ledger for the decisions it goes
        with, so that every record it names is in their ``used``."""
        with self._lock:
            return tuple(
                StoredOffsets(topic=topic, offsets=dict(offsets))
                for topic, offsets in sorted(self._stored.items())
                if topic
            )
