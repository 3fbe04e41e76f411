"""What the worker does with each batch: validate → dead-letter → price → ledger → observers.

Kept apart from the Faust wiring (``stream.app``) so its contract is plain: a batch is acknowledged
to Kafka only after :meth:`Pipeline.handle` returns, i.e. after its dead letters are published
and its ledger rows are durably inserted. A failure before that replays the batch (at least once);
the ledger makes replays harmless.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from spendstream.logs import get_logger
from spendstream.sinks.ledger import LedgerEntry, LedgerWriter
from spendstream.stream import metrics
from spendstream.stream.deadletter import DeadLetter
from spendstream.stream.processor import BatchProcessor, RawMessage

log = get_logger(__name__)

PublishDeadLetters = Callable[[Sequence[DeadLetter]], Awaitable[None]]


class BatchObserver(Protocol):
    """Called with every batch once it is in the ledger (e.g. budget evaluation)."""

    async def on_batch(self, entries: Sequence[LedgerEntry]) -> None: ...


class Pipeline:
    """Processes batches of raw usage messages; owns the single ledger-writer thread."""

    def __init__(
        self,
        processor: BatchProcessor,
        writer: LedgerWriter,
        publish_dead_letters: PublishDeadLetters,
        retry_max_s: float = 30.0,
    ) -> None:
        self.processor = processor
        self.writer = writer
        self.publish_dead_letters = publish_dead_letters
        self.retry_max_s = retry_max_s
        self.observers: list[BatchObserver] = []
        # One thread: clickhouse-connect calls block, and ledger writes must not interleave.
        self.sink_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")

    async def handle(self, messages: Sequence[RawMessage]) -> None:
        started = time.perf_counter()
        batch = self.processor.process(messages)
        metrics.EVENTS_IN.inc(batch.events_seen)
        if batch.dead_letters:
            await self.publish_dead_letters(batch.dead_letters)
            metrics.EVENTS_DEAD_LETTERED.inc(len(batch.dead_letters))
            for letter in batch.dead_letters:
                log.warning(
                    "event dead-lettered",
                    reason=letter.reason,
                    partition=letter.source_partition,
                    offset=letter.source_offset,
                )
        metrics.DUPLICATES_IN_BATCH.inc(batch.duplicates_in_batch)
        if batch.entries:
            await self.write_with_retry(batch.entries)
            unpriced = sum(1 for entry in batch.entries if not entry.rating.priced)
            metrics.EVENTS_UNPRICED.inc(unpriced)
            metrics.EVENTS_PRICED.inc(len(batch.entries) - unpriced)
            for observer in self.observers:
                await observer.on_batch(batch.entries)
        metrics.BATCH_LATENCY.observe(time.perf_counter() - started)

    async def write_with_retry(self, entries: Sequence[LedgerEntry]) -> None:
        """Insert until it succeeds. While ClickHouse is down the agent waits here, so the
        worker stops consuming (backpressure) but keeps heartbeating; offsets stay uncommitted."""
        loop = asyncio.get_running_loop()
        delay = 0.2
        while True:
            try:
                await loop.run_in_executor(self.sink_executor, self.writer.write, entries)
                metrics.BATCHES_WRITTEN.inc()
                return
            except Exception as exc:
                metrics.SINK_ERRORS.inc()
                log.warning("ledger write failed; retrying", error=str(exc)[:300], retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)

    def close(self) -> None:
        self.sink_executor.shutdown(wait=True)
