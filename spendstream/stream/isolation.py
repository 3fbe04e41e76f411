"""The ledger step: store a slice, retrying outages and isolating the rows the ledger rejects.

Generic over the entry type: the usage pipeline stores ledger entries, the outcome pipeline
outcome entries (its sink has no rollups to refresh); "ledger" below means the pipeline's table.

Failures are of two kinds. A *transient* one (ClickHouse unreachable, overloaded, timing out;
``sinks.errors.is_transient``) is retried on the same rows with back-off, for as long as it
lasts: the worker holds its batch and consumes nothing more (back-pressure), nothing is lost.
Any other failure may be caused by the rows: the slice is split in halves and each half is
tried again, down to single rows. A single row that still fails, twice more, while the sink
answers a ping, is rejected with the error as its reason (and dead-lettered by the pipeline);
every other row of the slice is stored once. If the ping fails, the failure was an outage after
all and the row is retried as above. So a poison row costs about ``2·log2(n)`` extra inserts
and can never hold the stream.

Rollups are refreshed once the slice's rows are in, from the ledger (the open hour and day
when the pipeline calls :meth:`LedgerStep.settle`, or on the sink's timer). Validation bounds
every event time, so a refresh cannot fail on the data; a refresh that keeps failing for another
reason raises :class:`RollupRefreshFailed` and the pipeline stops the worker, because the rows
are already stored and only a fix (then a replay) can roll them up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Generic, Protocol, TypeVar, runtime_checkable

from spendstream import retry
from spendstream.errors import SpendstreamError
from spendstream.logs import get_logger
from spendstream.stream import metrics
from spendstream.stream.processor import E, Entry

log = get_logger(__name__)


E_contra = TypeVar("E_contra", bound=Entry, contravariant=True)


class RowSink(Protocol[E_contra]):
    """What the ledger step needs of its sink (``sinks.ledger.LedgerWriter``,
    ``insights.outcomes.OutcomeStore``): blocking calls."""

    def insert(self, entries: Sequence[E_contra]) -> None: ...

    def refresh_rollups(self, times: Sequence[datetime]) -> None: ...

    def ping(self) -> None: ...


@runtime_checkable
class SettlingSink(Protocol):
    """A sink that defers part of its refresh (``sinks.ledger.LedgerWriter`` with a deferral)."""

    def settle(self) -> None:
        """Refresh everything deferred: the stream has drained."""


class RollupRefreshFailed(SpendstreamError):
    """Rollups could not be refreshed for rows already in the ledger (not an outage)."""


class StoppedDuringOutage(SpendstreamError):
    """The worker is stopping while the sink is unreachable. The slice in hand cannot be
    stored, so it must not be acknowledged: the pipeline ends the process (Faust would otherwise
    wait for the batch forever) and the batch is consumed again at the next start."""


@dataclass
class StoredSlice(Generic[E]):
    """Rows stored (in the ledger and rolled up) and rows rejected with the ledger's reason."""

    stored: list[E] = field(default_factory=list)
    rejected: list[tuple[E, str]] = field(default_factory=list)


class LedgerStep(Generic[E]):
    """Stores slices through ``sink`` on one thread; see the module docstring for the policy."""

    def __init__(
        self,
        sink: RowSink[E],
        executor: ThreadPoolExecutor,
        transient: Callable[[BaseException], bool],
        retry_max_s: float = 30.0,
        stopping: Callable[[], bool] = lambda: False,
        confirm_attempts: int = 2,
        refresh_attempts: int = 5,
        counters: metrics.StreamMetrics = metrics.USAGE,
        sink_name: str = "ledger",
    ) -> None:
        self.sink = sink
        self.counters = counters
        self.sink_name = sink_name  # names the sink in a rejected row's reason
        self.executor = executor
        self.transient = transient
        self.retry_max_s = retry_max_s
        self.stopping = stopping  # true once the worker is shutting down (SIGTERM)
        self.confirm_attempts = confirm_attempts
        self.refresh_attempts = refresh_attempts

    async def store(self, entries: Sequence[E]) -> StoredSlice[E]:
        """Insert ``entries`` (isolating rejected rows), then refresh their rollups."""
        result: StoredSlice[E] = StoredSlice()
        pending: list[Sequence[E]] = [entries]
        while pending:
            part = pending.pop()
            error = await self._insert(part)
            if error is None:
                result.stored.extend(part)
            elif len(part) > 1:
                middle = len(part) // 2
                pending += [part[middle:], part[:middle]]  # left half first
                if len(part) == len(entries):  # once per slice, not per split
                    log.warning(
                        "ledger insert failed; isolating the rows it rejects",
                        rows=len(part),
                        error=_short(error),
                    )
            else:
                reason = await self._confirm(part[0], error)
                if reason is None:
                    result.stored.append(part[0])
                else:
                    result.rejected.append((part[0], reason))
        if result.stored:
            times = [entry.event.event_time for entry in result.stored]
            await self._refresh(partial(self.sink.refresh_rollups, times))
            self.counters.batches_written.inc()
        return result

    async def settle(self) -> None:
        """Refresh what the sink deferred (``sinks.open_windows``): the stream has drained."""
        if isinstance(self.sink, SettlingSink):
            await self._refresh(self.sink.settle)

    async def _insert(self, part: Sequence[E]) -> BaseException | None:
        """Insert until it succeeds (None) or fails in a way that is not transient (the error)."""
        policy = retry.storage(
            self.transient, self.retry_max_s, "ledger write failed; retrying", self._back_off
        )
        try:
            async for attempt in policy:
                with attempt:
                    await self._counted(partial(self.sink.insert, part))
        except StoppedDuringOutage:
            raise
        except Exception as exc:
            return exc
        return None

    async def _confirm(self, entry: E, error: BaseException) -> str | None:
        """The reason to reject ``entry``, or None if it was stored after all."""
        for attempt in range(self.confirm_attempts):
            await asyncio.sleep(0.1 * 2**attempt)  # a pause before trying the row again
            # The sink down is an outage, not this row: wait until it answers.
            reachable = retry.storage(
                _always, self.retry_max_s, "ledger unreachable; retrying", self._back_off
            )
            async for ping in reachable:
                with ping:
                    await self._run(self.sink.ping)
            found = await self._insert([entry])
            if found is None:
                return None
            error = found
        error_text = f"{type(error).__name__}: {_short(error, 500)}"
        return f"the {self.sink_name} rejected the event: {error_text}"

    async def _refresh(self, refresh: Callable[[], None]) -> None:
        failures = 0

        def retried(exc: BaseException) -> bool:
            """Transient errors always; others until ``refresh_attempts`` of them."""
            nonlocal failures
            if self.transient(exc):
                return True
            failures += 1
            return failures < self.refresh_attempts

        policy = retry.storage(
            retried, self.retry_max_s, "rollup refresh failed; retrying", self._back_off
        )
        try:
            async for attempt in policy:
                with attempt:
                    await self._counted(refresh)
        except StoppedDuringOutage:
            raise
        except Exception as exc:
            raise RollupRefreshFailed(
                f"rollup refresh failed {failures} times: {_short(exc, 500)}"
            ) from exc

    async def _counted(self, call: Callable[[], None]) -> None:
        """Run ``call`` on the ledger thread, counting its failures as sink errors."""
        try:
            await self._run(call)
        except Exception:
            self.counters.sink_errors.inc()
            raise

    async def _back_off(self, delay_s: float) -> None:
        """Wait ``delay_s`` before a retry; raise :class:`StoppedDuringOutage` as soon as the
        worker is stopping (checked every quarter second)."""
        deadline = time.monotonic() + delay_s
        while not self.stopping():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.25))
        raise StoppedDuringOutage(
            f"stopping while the {self.sink_name} is unreachable: the batch in hand is not "
            "acknowledged and is consumed again at the next start"
        )

    async def _run(self, call: Callable[[], None]) -> None:
        await asyncio.get_running_loop().run_in_executor(self.executor, call)


def _always(exc: BaseException) -> bool:
    return True


def _short(exc: BaseException, limit: int = 300) -> str:
    return str(exc)[:limit]
