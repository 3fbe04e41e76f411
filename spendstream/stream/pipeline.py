"""What the worker does with each batch: validate → dead-letter → price → ledger → observers.

Kept apart from the Faust wiring (``stream.app``) so its contract is plain: a batch is acknowledged
to Kafka only after :meth:`Pipeline.handle` returns, i.e. after its dead letters are published
and its ledger rows are durably inserted. A crash before that replays the batch (at least once);
the ledger makes replays harmless.

``handle`` never raises: Faust's ``take_events`` acknowledges a batch in a ``finally`` block even
when the agent raises, and the crashed agent is not restarted, so an exception would silently
lose the batch and stop consumption. Failing steps are retried instead (backpressure).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from spendstream.logs import get_logger
from spendstream.sinks.entry import LedgerEntry
from spendstream.sinks.ledger import LedgerWriter
from spendstream.stream import metrics
from spendstream.stream.deadletter import DeadLetter
from spendstream.stream.processor import BatchProcessor, ProcessedBatch, RawMessage

log = get_logger(__name__)

_A = TypeVar("_A")
_T = TypeVar("_T")


class DeadLetterSink(Protocol):
    """Where dead letters go; ``publish`` returns once they are durably stored."""

    async def publish(self, letters: Sequence[DeadLetter]) -> None: ...


class BatchObserver(Protocol):
    """Called with every batch once it is in the ledger (e.g. budget evaluation)."""

    async def on_batch(self, entries: Sequence[LedgerEntry]) -> None: ...


class Pipeline:
    """Processes batches of raw usage messages; owns the single ledger-writer thread."""

    def __init__(
        self,
        processor: BatchProcessor,
        writer: LedgerWriter,
        dead_letters: DeadLetterSink,
        observers: Sequence[BatchObserver] = (),
        retry_max_s: float = 30.0,
        chunk_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.processor = processor
        self.writer = writer
        self.dead_letters = dead_letters
        self.observers = tuple(observers)
        self.retry_max_s = retry_max_s
        self.chunk_bytes = chunk_bytes
        # One thread: clickhouse-connect calls block, and ledger writes must not interleave.
        self.sink_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
        # Parsing a 16 MiB slice takes ~1 s of Python: off the event loop, which then keeps
        # fetching and heartbeating between the GIL switches (every 5 ms).
        self.process_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parse")

    async def handle(self, messages: Sequence[RawMessage]) -> None:
        """Process one batch; returns once it is fully handled. Never raises (see module doc).

        The batch is handled in slices of at most ``chunk_bytes`` of payload: while one slice is
        written (in the ledger thread, where chDB's native work runs without the GIL) the next
        is parsed and priced. Memory stays bounded by two slices, writes stay in order on the
        single ledger thread, and the batch is acknowledged only once every slice is written.
        """
        started = time.perf_counter()
        writing: asyncio.Future[None] | None = None
        try:
            for chunk in chunk_by_bytes(messages, self.chunk_bytes):
                batch = await self._prepare(chunk)
                if writing is not None:
                    await writing
                    writing = None
                if batch.entries:
                    writing = asyncio.ensure_future(self._store(batch.entries))
                    await asyncio.sleep(0)  # let it hand the insert to the ledger thread now
            if writing is not None:
                await writing
        finally:
            if writing is not None and not writing.done():
                writing.cancel()  # shutting down: the batch is not acknowledged, it replays
        metrics.BATCH_LATENCY.observe(time.perf_counter() - started)

    async def _prepare(self, messages: Sequence[RawMessage]) -> ProcessedBatch:
        """Parse, deduplicate and price a slice; publish its dead letters."""
        batch = await self.until_done("process batch", self._process, messages)
        metrics.EVENTS_IN.inc(batch.events_seen)
        if batch.dead_letters:
            await self.until_done(
                "publish dead letters", self.dead_letters.publish, batch.dead_letters
            )
            metrics.EVENTS_DEAD_LETTERED.inc(len(batch.dead_letters))
            for letter in batch.dead_letters:
                log.warning(
                    "event dead-lettered",
                    reason=letter.reason,
                    partition=letter.source_partition,
                    offset=letter.source_offset,
                )
        metrics.DUPLICATES_IN_BATCH.inc(batch.duplicates_in_batch)
        return batch

    async def _store(self, entries: Sequence[LedgerEntry]) -> None:
        """Write a slice to the ledger (retrying until it succeeds), then tell the observers."""
        await self.write_with_retry(entries)
        unpriced = sum(1 for entry in entries if not entry.rating.priced)
        metrics.EVENTS_UNPRICED.inc(unpriced)
        metrics.EVENTS_PRICED.inc(len(entries) - unpriced)
        for observer in self.observers:
            try:
                await observer.on_batch(entries)
            except Exception:  # the slice is in the ledger; keep consuming
                log.exception("batch observer failed", observer=type(observer).__name__)

    async def _process(self, messages: Sequence[RawMessage]) -> ProcessedBatch:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.process_executor, self.processor.process, messages)

    async def until_done(
        self, step: str, action: Callable[[_A], Awaitable[_T]], argument: _A
    ) -> _T:
        """``await action(argument)`` until it succeeds, backing off up to ``retry_max_s``.

        A step that always fails (e.g. a dead letter larger than the producer accepts) holds
        the worker here (logged on every attempt) rather than lose the batch.
        """
        delay = 0.2
        while True:
            try:
                return await action(argument)
            except Exception as exc:
                log.warning(f"{step} failed; retrying", error=str(exc)[:300], retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)

    async def write_with_retry(self, entries: Sequence[LedgerEntry]) -> None:
        """Insert until it succeeds. While ClickHouse is down the agent waits here, so the
        worker stops consuming (backpressure) but keeps heartbeating; offsets stay uncommitted."""
        await self.until_done("ledger write", self._write, entries)
        metrics.BATCHES_WRITTEN.inc()

    async def _write(self, entries: Sequence[LedgerEntry]) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.sink_executor, self.writer.write, entries)
        except Exception:
            metrics.SINK_ERRORS.inc()
            raise

    def close(self) -> None:
        self.process_executor.shutdown(wait=True)
        self.sink_executor.shutdown(wait=True)


def chunk_by_bytes(
    messages: Sequence[RawMessage], max_bytes: int
) -> Iterator[Sequence[RawMessage]]:
    """Consecutive slices of ``messages`` whose payloads add up to at most ``max_bytes``
    (a single larger message is a slice of its own)."""
    start, size = 0, 0
    for index, message in enumerate(messages):
        length = len(message.value or b"")
        if size and size + length > max_bytes:
            yield messages[start:index]
            start, size = index, 0
        size += length
    if start < len(messages):
        yield messages[start:]
