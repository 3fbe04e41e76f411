"""What the worker does with each batch: validate → dead-letter → price → ledger → observers.

Every topic goes through this machinery: :class:`StreamPipeline` is generic over the entry its
processor produces and its sink stores; :class:`Pipeline` is the usage events' (priced ledger
entries), and outcome events get a ``StreamPipeline`` of their own (``stream.outcomes``) with their
own dead-letter limit, ledger thread and metrics. Everything below holds for each.

Kept apart from the Faust wiring (``stream.app``) so its contract is plain: a batch is acknowledged
to Kafka only after :meth:`Pipeline.handle` returns, i.e. after its dead letters are published
and its ledger rows are durably inserted. A crash before that replays the batch (at least once);
the ledger makes replays harmless, and dead letters are deduplicated by their source.

``handle`` never raises: Faust's ``take_events`` acknowledges a batch in a ``finally`` block even
when the agent raises, and the crashed agent is not restarted, so an exception would silently
lose the batch and stop consumption. Instead (docs/failure-model.md):

- the data can never hold the stream: a line that fails validation, or that the ledger rejects
  (``stream.isolation``), is dead-lettered with its reason, and every other event is stored;
- outages are retried with back-off for as long as they last (back-pressure);
- when the worker must not go on (the dead-letter limit is crossed, rollups cannot be refreshed,
  a bug outside any one event), ``stop`` is called: it logs and ends the process with a non-zero
  status without acknowledging the batch in hand.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, NoReturn, Protocol, TypeVar

from aiokafka import errors as aiokafka_errors

from spendstream import retry
from spendstream.logs import get_logger
from spendstream.sinks.entry import LedgerEntry
from spendstream.sinks.errors import is_transient
from spendstream.stream import metrics
from spendstream.stream.deadletter import DeadLetter
from spendstream.stream.dlq import DlqGuard, DlqLimit, DlqLimitExceeded
from spendstream.stream.drain import steady
from spendstream.stream.isolation import (
    LedgerStep,
    RollupRefreshFailed,
    RowSink,
    StoppedDuringOutage,
)
from spendstream.stream.processor import E, Entry, ProcessedBatch, RawMessage

log = get_logger(__name__)

# Exit status of a worker stopped on purpose (EX_SOFTWARE): restarting it without a fix or a
# configuration change stops it again on the same batch.
EXIT_STOPPED = 70


class DeadLetterSink(Protocol):
    """Where dead letters go; ``publish`` returns once they are durably stored."""

    async def publish(self, letters: Sequence[DeadLetter]) -> None: ...


E_contra = TypeVar("E_contra", bound=Entry, contravariant=True)


class Processor(Protocol[E]):
    """Raw messages in, entries and dead letters out; no I/O, never raises on the data
    (``stream.processor.LineProcessor``)."""

    def process(self, messages: Sequence[RawMessage]) -> ProcessedBatch[E]: ...


class Observer(Protocol[E_contra]):
    """Called with every batch once it is stored (e.g. budget evaluation)."""

    async def on_batch(self, entries: Sequence[E_contra]) -> None: ...


BatchObserver = Observer[LedgerEntry]


def exit_process(reason: str) -> NoReturn:
    """Stop the worker now, loudly: log, then exit with ``EXIT_STOPPED`` without acknowledging
    the batch in hand (no Faust shutdown, which would commit it)."""
    log.critical("worker stopping on purpose", reason=reason, exit_status=EXIT_STOPPED)
    sys.stderr.flush()
    os._exit(EXIT_STOPPED)


class StreamPipeline(Generic[E]):
    """Processes batches of one topic's raw messages; owns its single sink-writer thread.

    ``name`` prefixes its threads' names (usage keeps ``ledger`` and ``parse``); ``sink_name``
    names the sink in the reason of a row it rejects (``the ledger rejected the event: ...``).
    """

    def __init__(
        self,
        processor: Processor[E],
        writer: RowSink[E],
        dead_letters: DeadLetterSink,
        observers: Sequence[Observer[E]] = (),
        retry_max_s: float = 30.0,
        chunk_bytes: int = 16 * 1024 * 1024,
        dlq_limit: DlqLimit | None = None,
        stop: Callable[[str], NoReturn] = exit_process,
        transient: Callable[[BaseException], bool] = is_transient,
        counters: metrics.StreamMetrics = metrics.USAGE,
        name: str = "",
        sink_name: str = "ledger",
        stopping: Callable[[], bool] = lambda: False,
        idle_s: float = 0.0,
    ) -> None:
        """``stopping``: true once the worker shuts down; an outage then ends the process
        instead of retrying (``stream.isolation.StoppedDuringOutage``). ``idle_s``: the agent's
        idle interval; a caught-up batch less than this after another does not settle
        (``stream.drain.steady``; 0: every caught-up batch settles)."""
        self.processor = processor
        self.dead_letters = dead_letters
        self.observers = tuple(observers)
        self.retry_max_s = retry_max_s
        self.chunk_bytes = chunk_bytes
        self.guard = DlqGuard(dlq_limit or DlqLimit())
        self.stop = stop
        self.counters = counters
        # One thread: clickhouse-connect calls block, and ledger writes must not interleave.
        self.sink_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}ledger")
        self.ledger = LedgerStep(
            writer,
            self.sink_executor,
            transient,
            retry_max_s,
            stopping,
            counters=counters,
            sink_name=sink_name,
        )
        # Parsing a 16 MiB slice takes ~1 s of Python: off the event loop, which then keeps
        # fetching and heartbeating between the GIL switches (every 5 ms).
        self.process_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}parse")
        # Whether the last batch left deferred rollups behind (settle_if_idle), and when.
        # True at start: windows a previous process marked and never flushed (a SIGKILL, or
        # SIGTERM while deferring) are settled once the stream is idle, traffic or not.
        self.unsettled = True
        self.handling = False
        self.last_handled = time.monotonic()
        self.idle_s = idle_s
        self.caught_up = False  # whether the last batch was (stream.drain.steady)

    async def handle(self, messages: Sequence[RawMessage], caught_up: bool = True) -> None:
        """Process one batch; returns once it is fully handled. Never raises (see module doc).

        The batch is handled in slices of at most ``chunk_bytes`` of payload: while one slice is
        written (in the ledger thread, where chDB's native work runs without the GIL) the next
        is parsed and priced. Memory stays bounded by two slices, writes stay in order on the
        single ledger thread, and the batch is acknowledged only once every slice is written.
        ``caught_up``: nothing is known to wait behind this batch, so whatever the sink deferred
        is refreshed before it is acknowledged (``sinks.open_windows``: rollups equal the ledger
        after every drain); the agents pass False while their partitions have a backlog.
        """
        started = time.perf_counter()
        gap_s = time.monotonic() - self.last_handled
        settle = caught_up and not steady(caught_up, self.caught_up, gap_s, self.idle_s)
        self.caught_up = caught_up
        writing: asyncio.Future[None] | None = None
        self.handling = True
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
                writing = None
            if settle:
                await self.ledger.settle()
            self.unsettled = not settle
        except (DlqLimitExceeded, RollupRefreshFailed, StoppedDuringOutage) as exc:
            self.stop(str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug outside any one event: retrying cannot help
            log.exception("batch handling failed")
            self.stop(f"unexpected error handling a batch: {type(exc).__name__}: {exc}")
        finally:
            self.handling = False
            self.last_handled = time.monotonic()
            if writing is not None and not writing.done():
                writing.cancel()  # shutting down: the batch is not acknowledged, it replays
        self.counters.batch_latency.observe(time.perf_counter() - started)

    async def settle_if_idle(self, idle_s: float) -> None:
        """Settle when no batch has come for ``idle_s`` since one that did not settle: a stream
        that stopped on a full batch has drained too (``stream.drain``). Never raises."""
        idle = time.monotonic() - self.last_handled >= idle_s
        if not self.unsettled or self.handling or not idle:
            return
        try:
            await self.ledger.settle()
            self.unsettled = False
        except RollupRefreshFailed as exc:
            self.stop(str(exc))
        except Exception as exc:  # a bug: as in handle, stop rather than go on unsettled
            log.exception("settling an idle stream failed")
            self.stop(f"unexpected error settling rollups: {type(exc).__name__}: {exc}")

    async def _prepare(self, messages: Sequence[RawMessage]) -> ProcessedBatch[E]:
        """Parse, deduplicate and price a slice; publish its dead letters."""
        batch = await self._process(messages)
        self.counters.events_in.inc(batch.events_seen)
        self.guard.record(
            batch.events_seen,
            len(batch.dead_letters),
            batch.leading_run,
            batch.longest_run,
            batch.trailing_run,
        )
        await self.publish_dead_letters(batch.dead_letters)
        self.counters.duplicates.inc(batch.duplicates_in_batch)
        return batch

    async def _store(self, entries: Sequence[E]) -> None:
        """Write a slice to the ledger (isolating rejected rows), then tell the observers."""
        result = await self.ledger.store(entries)
        if result.rejected:
            self.counters.rejected.inc(len(result.rejected))
            self.guard.record_rejected(len(result.rejected))
            await self.publish_dead_letters(
                [
                    DeadLetter.for_payload(
                        entry.event.to_json_bytes(),
                        reason,
                        entry.origin.topic,
                        entry.origin.partition,
                        entry.origin.offset,
                        entry.origin.index,
                    )
                    for entry, reason in result.rejected
                ]
            )
        stored = result.stored
        self.count_stored(stored)
        if not stored:
            return
        for observer in self.observers:
            try:
                await observer.on_batch(stored)
            except Exception:  # the slice is in the ledger; keep consuming
                log.exception("batch observer failed", observer=type(observer).__name__)

    def count_stored(self, stored: Sequence[E]) -> None:
        """Count what a slice stored, per topic (nothing beyond the common counters here)."""

    async def _process(self, messages: Sequence[RawMessage]) -> ProcessedBatch[E]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.process_executor, self.processor.process, messages)

    async def publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Publish ``letters`` until the broker acknowledges them (back-pressure meanwhile);
        call before the batch is acknowledged."""
        if not letters:
            return
        async for attempt in retry.broker(
            self.retry_max_s, "publish dead letters failed; retrying"
        ):
            with attempt:
                try:
                    await self.dead_letters.publish(letters)
                except Exception as exc:
                    if _too_large(exc):  # letters are sized to fit; never let one hold the stream
                        letters = [letter.without_payload() for letter in letters]
                    raise
        self.counters.dead_lettered.inc(len(letters))
        for letter in letters:
            log.warning(
                "event dead-lettered",
                reason=letter.reason[:300],
                partition=letter.source_partition,
                offset=letter.source_offset,
                index=letter.source_index,
            )

    def close(self) -> None:
        self.process_executor.shutdown(wait=True)
        self.sink_executor.shutdown(wait=True)


class Pipeline(StreamPipeline[LedgerEntry]):
    """The usage events' pipeline: priced ledger entries, counted as priced or not."""

    def count_stored(self, stored: Sequence[LedgerEntry]) -> None:
        unpriced = sum(1 for entry in stored if not entry.rating.priced)
        metrics.EVENTS_UNPRICED.inc(unpriced)
        metrics.EVENTS_PRICED.inc(len(stored) - unpriced)


# The broker's or the producer's refusal of a record for its size (Faust sends with aiokafka).
TOO_LARGE = (
    aiokafka_errors.MessageSizeTooLargeError,
    aiokafka_errors.RecordTooLargeError,
    aiokafka_errors.RecordListTooLargeError,
)


def _too_large(exc: Exception) -> bool:
    """Whether the broker or producer refused a record for its size."""
    return isinstance(exc, TOO_LARGE)


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
