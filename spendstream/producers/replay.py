"""A chunk of spool records being replayed, and which of them the broker acknowledged."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from spendstream.producers.spool import SpoolRecord


class ReplayChunk:
    """Spool records being replayed; callbacks from Kafka's I/O thread mark them done or failed."""

    def __init__(
        self,
        records: list[SpoolRecord],
        on_delivered: Callable[[Sequence[bytes], str, int, int], None] | None = None,
    ) -> None:
        self.records = records
        self.on_delivered = on_delivered
        self.done = [False] * len(records)
        self.remaining = len(records)
        self.retry: deque[int] = deque(range(len(records)))
        self.lock = threading.Lock()
        self.started = False
        self.backed_off = False

    def succeeded(self, index: int, metadata: Any) -> None:
        with self.lock:
            self.done[index] = True
            self.remaining -= 1
        if self.on_delivered is not None:
            record = [self.records[index].value]
            self.on_delivered(record, metadata.topic, metadata.partition, metadata.offset)

    def failed(self, index: int, _error: Exception) -> None:
        self.retry.append(index)

    def delivered_prefix(self) -> int:
        """How many records from the start are acknowledged (safe to commit)."""
        with self.lock:
            return next((i for i, done in enumerate(self.done) if not done), len(self.done))
