"""The background sender: queue -> Kafka, or -> disk spool and back, in order.

State machine (one thread owns the KafkaProducer and reads the spool):

- *direct*: the producer is up and the spool is empty; queued events go straight to
  ``KafkaProducer.send``. A failed send future puts its event into the spool.
- *spooling*: no producer, or the spool holds events. Queued events are appended to the spool
  behind the older ones, and the spool is replayed in append order, one chunk at a time. A chunk
  is committed (leaves the spool) only when every record in it was acknowledged; failed records
  are re-sent alone, so the replay itself never sends a record twice while the process lives.

After repeated failures (nothing acknowledged for ``recreate_after_s``) or a non-retriable error
the producer is closed (its pending futures fail and go to the spool) and recreated, with
exponential back-off. The spool is drained before the sender goes back to *direct*.

Every acknowledged record is reported to ``on_delivered`` (payloads, topic, partition, offset):
admission counts a process's own calls until the ledger is known to hold their offsets.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError, RequestTimedOutError
from kafka.future import Future

from spendstream.producers.log import get_logger
from spendstream.producers.options import RecorderOptions, producer_config
from spendstream.producers.orphans import OrphanSlots
from spendstream.producers.partitioning import Item, KeyPartitioner, Pack, pack_by_key
from spendstream.producers.replay import ReplayChunk
from spendstream.producers.spool import Spool
from spendstream.producers.stats import Counters

NDJSON_HEADERS = [("content-type", b"application/x-ndjson")]
IDLE_POLL_S = 0.005
SPOOL_SLICE = 1_000  # records per spool append: keeps each lock hold well under a millisecond

log = get_logger(__name__)
# (payloads, topic, partition, offset) of records the broker acknowledged; must not raise.
OnDelivered = Callable[[Sequence[bytes], str, int, int], None]


class Sender:
    """Owns the KafkaProducer, the spool consumer side, and the delivery accounting."""

    def __init__(
        self,
        options: RecorderOptions,
        queue: deque[Item],
        spool: Spool,
        counters: Counters,
        on_delivered: OnDelivered | None = None,
        orphans: OrphanSlots | None = None,
    ) -> None:
        self.options = options
        self.on_delivered = on_delivered
        self.queue = queue
        self.spool = spool
        self.orphans = orphans  # slots dead processes left: replayed once our spool is empty
        self.counters = counters
        self.producer: KafkaProducer | None = None
        self._partitioner: KeyPartitioner | None = None
        # Direct sends awaiting acknowledgement, in send order; settled by this thread (no
        # per-event callbacks: they cost more CPU than a check of the oldest futures).
        self._flying: deque[tuple[Future, Pack, float]] = deque()
        self._chunk: ReplayChunk | None = None
        self._chunk_spool = spool  # the spool the chunk was read from (ours or an orphan)
        self._next_connect = 0.0
        self._connect_failures = 0
        self._steps = 0
        self._last_quiet_step = -1
        self._retry_at = 0.0
        self._backoff = 0.0
        self._last_success = time.monotonic()
        self._failing_since: float | None = None
        self._stop = threading.Event()
        self._stop_deadline = 0.0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spendstream-sender", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def abandon_in_child(self) -> None:
        """In a forked child: drop the parent's producer and spool without using them.

        The producer's sockets and batches are the parent's (closing or flushing it here would
        write into the parent's connections or wait forever), so it is only marked closed
        (kafka-python's own flag), which turns its ``atexit`` hook and ``__del__`` into no-ops.
        kafka-python has no public call for this: ``close()`` flushes and closes connections,
        and ``close(timeout=0)`` still touches them.
        """
        producer, self.producer = self.producer, None
        if producer is not None and hasattr(producer, "_closed"):
            producer._closed = True
        self._flying.clear()
        self._chunk = None
        self.spool.abandon_in_child()
        if self.orphans is not None:
            self.orphans.abandon_in_child()

    def stop(self, timeout_s: float) -> None:
        """Deliver what can be delivered within ``timeout_s``, spool the rest, stop the thread."""
        self._stop_deadline = time.monotonic() + timeout_s
        self._stop.set()
        self._thread.join(timeout_s + self.options.connect_timeout_ms / 1000 + 5)

    @property
    def step_count(self) -> int:
        return self._steps

    def quiet_since(self, step: int) -> bool:
        """Whether a loop step that began after ``step`` ended with nothing left to deliver.

        Everything queued before that step began has then been acknowledged. After the thread
        stopped, reports the final state instead.
        """
        if self._stopped.is_set():
            return self._nothing_pending()
        return self._last_quiet_step > step

    def _nothing_pending(self) -> bool:
        return (
            not self.queue and not self._flying and self._chunk is None and not self.spool.pending()
        )

    @property
    def in_flight(self) -> int:
        """Kafka messages awaiting acknowledgement (each packs up to ``pack_max_events``)."""
        return len(self._flying)

    @property
    def connected(self) -> bool:
        return self.producer is not None and self._failing_since is None

    # -- main loop -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not (self._stop.is_set() and self._done_stopping()):
                try:
                    self._step()
                except Exception:  # a bug must not stop delivery: count it, log it, go on
                    self.counters.add("sender_errors")
                    log.exception("sender_step_failed")
                    time.sleep(0.1)
        finally:
            self._shutdown()
            self._stopped.set()

    def _step(self) -> None:
        self._steps += 1
        step = self._steps
        self._connect_if_due()
        self._settle()
        items = self._take(self.options.replay_batch * 5)
        if items:
            if self._direct_ok():
                self._send_direct(items)
            else:
                self._to_spool(items)
        if self.producer is not None and time.monotonic() >= self._retry_at:
            self._replay_step()
        self._check_health()
        self.spool.sync()
        if self._nothing_pending():
            self._last_quiet_step = step
        if not self.queue:
            time.sleep(IDLE_POLL_S)

    def _direct_ok(self) -> bool:
        """Send straight to Kafka only when nothing older waits and the broker is answering.

        A send unanswered for ``stall_ms`` means the broker is likely gone: new events then go
        to the spool (durable) instead of piling up in kafka-python's memory until
        ``delivery_timeout_ms`` fails them.
        """
        stalled = bool(self._flying) and (
            time.monotonic() - self._flying[0][2] > self.options.stall_ms / 1000
        )
        return (
            self.producer is not None
            and (self._chunk is None or self._chunk_spool is not self.spool)
            and not stalled
            and not self.spool.pending()
        )

    def _done_stopping(self) -> bool:
        # Waiting only helps while the broker takes events (or the first connection, e.g. in a
        # freshly forked child, is still being made); otherwise spool and stop at once.
        known_down = self._failing_since is not None or (
            self.producer is None and self._connect_failures > 0
        )
        return self._nothing_pending() or time.monotonic() >= self._stop_deadline or known_down

    def _take(self, limit: int) -> list[Item]:
        items: list[Item] = []
        popleft = self.queue.popleft
        try:
            while len(items) < limit:
                items.append(popleft())
        except IndexError:
            pass
        return items

    # -- direct sends --------------------------------------------------------------------------

    def _send_direct(self, items: list[Item]) -> None:
        assert self.producer is not None
        now = time.monotonic()
        packs = pack_by_key(items, self.options.pack_max_events, self.options.pack_max_bytes)
        for position, pack in enumerate(packs):
            try:
                future = self._send_pack(pack)
            except Exception as exc:  # metadata timeout, buffer full, closed producer
                self._note_failure(exc)
                unsent = [item for rest in packs[position:] for item in rest]
                self._to_spool(unsent, may_send=False)
                return
            self._flying.append((future, pack, now))

    def _send_pack(self, pack: Pack) -> Future:
        key = pack[0][0]
        if len(pack) == 1:
            return self._send(key, pack[0][1])
        assert self.producer is not None and self._partitioner is not None
        partition = self._partitioner.partition(key) if key else None
        value = b"\n".join(item[1] for item in pack)
        return self.producer.send(
            self.options.topic, value, key=key, partition=partition, headers=NDJSON_HEADERS
        )

    def _send(self, key: bytes | None, value: bytes) -> Future:
        assert self.producer is not None and self._partitioner is not None
        partition = self._partitioner.partition(key) if key else None
        return self.producer.send(self.options.topic, value, key=key, partition=partition)

    def _settle(self) -> None:
        """Account for acknowledged direct sends; failed ones go to the spool."""
        flying, sent, failed = self._flying, 0, []
        while flying and flying[0][0].is_done:
            future, pack, _ = flying.popleft()
            if future.succeeded():
                sent += len(pack)
                if self.on_delivered is not None:
                    meta = future.value
                    self.on_delivered([v for _, v in pack], meta.topic, meta.partition, meta.offset)
            else:
                failed.extend(pack)
        if sent:
            self.counters.add("sent", sent)
            self._last_success = time.monotonic()
        if failed:
            self._note_failure(None)
            self._to_spool(failed)

    def _to_spool(self, items: list[Item], may_send: bool = True) -> None:
        """Append to the spool in slices (short lock holds); what does not fit is sent directly
        while the broker is up, else dropped as ``spool_full``."""
        appended = 0
        for start in range(0, len(items), SPOOL_SLICE):
            part = items[start : start + SPOOL_SLICE]
            fitted = self.spool.append(part)
            appended += fitted
            if fitted < len(part):
                break
        self.counters.add("spooled", appended)
        rest = items[appended:]
        if not rest:
            return
        if may_send and self.connected:
            self._send_direct(rest)  # out of order, but better than dropping
            return
        self.counters.drop("spool_full", len(rest))
        log.error(
            "spool_full_events_dropped",
            dropped=len(rest),
            spool_dir=self.options.spool_dir,
            spool_max_bytes=self.options.spool_max_bytes,
        )

    # -- replay --------------------------------------------------------------------------------

    def _replay_step(self) -> None:
        if self._chunk is None:
            source = self._replay_source()
            records = source.read(self.options.replay_batch) if source is not None else []
            if source is None or not records:
                return
            # A dead process's events are not this process's calls: admission never counted them.
            own = source is self.spool
            self._chunk = ReplayChunk(records, self.on_delivered if own else None)
            self._chunk_spool = source
        chunk = self._chunk
        if chunk.started and chunk.retry and not chunk.backed_off:
            chunk.backed_off = True  # sends failed: wait for the back-off before re-sending
            self._note_failure(None)
            return
        chunk.started, chunk.backed_off = True, False
        while chunk.retry and self.producer is not None:
            index = chunk.retry.popleft()
            record = chunk.records[index]
            try:
                future = self._send(record.key, record.value)
            except Exception as exc:
                chunk.retry.appendleft(index)
                self._note_failure(exc)
                return
            future.add_callback(chunk.succeeded, index)
            future.add_errback(chunk.failed, index)
        if chunk.remaining == 0:
            self._chunk_spool.commit(chunk.records[-1].end)
            self.counters.add("replayed", len(chunk.records))
            self.counters.add("sent", len(chunk.records))
            self._last_success = time.monotonic()
            self._chunk = None

    def _replay_source(self) -> Spool | None:
        """Our own spool first (order), then a slot a dead process left (see orphans.py)."""
        if self.spool.pending() or self.orphans is None:
            return self.spool
        return self.orphans.next_spool()

    def _commit_delivered_prefix(self) -> None:
        if self._chunk is None:
            return
        delivered = self._chunk.delivered_prefix()
        if delivered:
            self._chunk_spool.commit(self._chunk.records[delivered - 1].end)
            self.counters.add("replayed", delivered)
            self.counters.add("sent", delivered)
        self._chunk = None

    # -- producer health -----------------------------------------------------------------------

    def _connect_if_due(self) -> None:
        if self.producer is not None or time.monotonic() < self._next_connect:
            return
        try:
            self.producer = KafkaProducer(**producer_config(self.options))
        except Exception as exc:
            self._backoff = min(self.options.max_backoff_s, max(0.2, self._backoff * 2))
            self._next_connect = time.monotonic() + self._backoff
            # One warning per outage; the retries are logged at debug level.
            report = log.warning if self._connect_failures == 0 else log.debug
            report("broker_unreachable", error=repr(exc), retry_in_s=self._backoff)
            self._connect_failures += 1
            return
        self._connect_failures = 0
        self._partitioner = KeyPartitioner(self.producer, self.options.topic)
        log.info("broker_connected", bootstrap_servers=self.options.bootstrap_servers)
        self._last_success = time.monotonic()
        self._failing_since = None
        self._retry_at = 0.0

    def _note_failure(self, exc: Exception | None) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
            log.warning("broker_send_failed", error=repr(exc) if exc else "delivery failed")
        self._backoff = min(self.options.max_backoff_s, max(0.2, self._backoff * 2))
        self._retry_at = now + self._backoff
        fatal = isinstance(exc, KafkaError) and not exc.retriable
        if fatal and not _is_timeout(exc):
            self._recreate(f"fatal error {exc!r}")

    def _check_health(self) -> None:
        if self._failing_since is None or self.producer is None:
            return
        if self._last_success > self._failing_since:
            self._failing_since = None
            self._backoff = 0.0
            log.info("broker_recovered")
        elif time.monotonic() - self._last_success > self.options.recreate_after_s:
            self._recreate(f"nothing acknowledged for {self.options.recreate_after_s}s")

    def _recreate(self, why: str) -> None:
        log.warning("producer_recreated", reason=why)
        self.counters.add("producer_restarts")
        self._close_producer(0.0)
        self._next_connect = time.monotonic() + self._backoff
        self._last_success = time.monotonic()

    def _close_producer(self, timeout_s: float) -> None:
        """Close the producer; futures still pending fail now (their events go to the spool)."""
        producer, self.producer = self.producer, None
        if producer is None:
            return
        try:
            producer.flush(timeout_s)
        except KafkaTimeoutError:
            # kafka-python 3.0's close() re-runs flush() and raises instead of force-closing
            # while records are pending, leaking the producer. Force-close its I/O thread
            # first (private API, guarded): it aborts every pending batch and fails the futures.
            io_thread = getattr(producer, "_sender", None)
            if io_thread is not None and hasattr(io_thread, "force_close"):
                io_thread.force_close()
                io_thread.join(5)
        try:
            producer.close(timeout=1)
        except Exception as exc:
            log.warning("producer_close_failed", error=repr(exc))

    def _shutdown(self) -> None:
        remaining = max(0.0, self._stop_deadline - time.monotonic())
        self._to_spool(self._take(len(self.queue) + 1))
        self._close_producer(remaining)
        self._settle()  # every future is done once the producer is closed...
        # ...but should one not be, spool it: a possible duplicate, never a loss.
        self._to_spool([item for _, pack, _ in self._flying for item in pack], may_send=False)
        self._flying.clear()
        self._commit_delivered_prefix()
        self._to_spool(self._take(len(self.queue) + 1))  # a record() that raced with close()
        self.spool.close()
        if self.orphans is not None:
            self.orphans.release()


def _is_timeout(exc: KafkaError) -> bool:
    return isinstance(exc, KafkaTimeoutError | RequestTimedOutError)
