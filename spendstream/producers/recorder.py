"""Recorder: the one object an app creates to publish LLM usage events.

``record()`` validates the event, serialises it, and appends it to an in-memory queue (a few
microseconds); a background :class:`~spendstream.producers.sender.Sender` delivers it to Kafka or
to the disk spool. ``record()`` never raises into the app and never waits longer than
``record_timeout_ms``: when the queue is full the event goes straight to the spool, and if even
the spool's lock is not free within the bound the event is dropped with
``dropped{reason="record_timeout"}``.

Partition key: the value of the tag named by ``partition_key_tag`` (default ``team``), so one
team's events stay on one partition; events without that tag are keyed by ``event_id``.

Delivery is at-least-once: duplicates are possible (a lost acknowledgement, a crash between
delivery and the spool cursor update) and are removed by ``event_id`` in the ledger. Events still
in memory (queue, not yet acknowledged) are lost if the process is killed; ``close()`` (also run at
interpreter exit and at the end of a ``multiprocessing`` child, see :mod:`.exits`) spools whatever
it cannot deliver in time.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from functools import partial
from types import TracebackType
from typing import Any

from prometheus_client.registry import CollectorRegistry
from pydantic import ValidationError

from spendstream.config import Settings
from spendstream.decisions import Decision
from spendstream.events import (
    EventError,
    OutcomeEvent,
    UsageEvent,
    describe_validation_error,
)
from spendstream.producers.admission import AdmissionView, Guard
from spendstream.producers.exits import (
    cancel_exit_hooks,
    close_at_exit,
    close_at_multiprocessing_exit,
)
from spendstream.producers.extractors import UsageExtractionError, extract_usage
from spendstream.producers.feed import DecisionFeed
from spendstream.producers.log import get_logger
from spendstream.producers.options import RecorderOptions
from spendstream.producers.orphans import OrphanSlots
from spendstream.producers.partitioning import Item, encode_event
from spendstream.producers.placement import client_placement
from spendstream.producers.prompts import prompt_hash
from spendstream.producers.runs import (
    Run,
    current_run,
    entered,
    new_run,
    stamp_event,
    stamp_fields,
    with_run_values,
)
from spendstream.producers.sender import Sender
from spendstream.producers.spool import SpoolLockTimeout, open_spool
from spendstream.producers.stats import Counters, RecorderStats, StatsCollector
from spendstream.producers.tags import TagMerger, current_scopes

log = get_logger(__name__)
_WARN_INTERVAL_S = 1.0


class Recorder:
    """Thread-safe usage recorder. Create once per process; ``close()`` (or ``with``) at the end.

    Arguments are the fields of :class:`RecorderOptions` (``bootstrap_servers``, ``topic``,
    ``spool_dir``, ...), or a ready ``RecorderOptions`` as the only positional argument.
    ``prometheus_registry`` registers a collector exposing :meth:`stats`.
    """

    def __init__(
        self,
        options: RecorderOptions | None = None,
        /,
        *,
        prometheus_registry: CollectorRegistry | None = None,
        **kwargs: Any,
    ) -> None:
        self.options = options or RecorderOptions.model_validate(kwargs)
        if options is not None and kwargs:
            self.options = options.model_copy(update=kwargs)
        self._queue_size = self.options.queue_size
        self._bound_s = self.options.record_timeout_ms / 1000
        self._closed = False
        self._last_warning = 0.0
        self._outcomes: Recorder | None = None  # created on the first outcome()
        # created by the first record() inside a run (run.cost)
        self._run_pricer: Callable[[UsageEvent], Decimal | None] | None = None
        self._open()
        self._view: AdmissionView | None = None
        self._feed: DecisionFeed | None = None
        if self.options.admission:
            self._start_admission()
        if prometheus_registry is not None:
            prometheus_registry.register(StatsCollector(self.stats))
        self._sender.start()
        close_at_exit(self)
        os.register_at_fork(after_in_child=partial(_reopen_in_child, weakref.ref(self)))

    def _open(self) -> None:
        """Fresh per-process state: counters, locks, queue, a spool slot and a sender."""
        self._counters = Counters()
        self._tags = TagMerger(
            self.options.default_tags, on_conflict=lambda: self._counters.add("tag_conflicts")
        )
        self._queue: deque[Item] = deque()
        self._close_lock = threading.Lock()

        def on_corrupt(count: int) -> None:
            self._counters.drop("spool_corrupt", count)

        self._spool = open_spool(
            self.options.spool_dir,
            self.options.spool_max_bytes,
            fsync_interval_s=self.options.fsync_interval_s,
            on_corrupt=on_corrupt,
        )
        orphans = OrphanSlots(
            self.options.spool_dir,
            self._spool.directory,
            self.options.spool_max_bytes,
            self.options.fsync_interval_s,
            on_corrupt,
        )
        self._sender = Sender(
            self.options, self._queue, self._spool, self._counters, self._delivered, orphans
        )

    def _after_fork_in_child(self) -> None:
        """Give a forked child its own sender, producer and spool slot.

        The parent keeps delivering what it had queued, so the child starts with an empty queue
        (no duplicates) and abandons, untouched, the parent's producer (whose sockets and I/O
        thread belong to the parent) and spool (whose lock and segment the parent holds). The
        ``atexit`` hook is inherited, so the child's events are delivered or spooled when it
        exits normally; a ``multiprocessing`` child ends with ``os._exit``, which skips it, so
        the child also gets multiprocessing's exit hook (:mod:`.exits`). A child ended by
        ``os._exit`` of its own or by a signal runs neither: what it still holds is lost.
        """
        if self._closed:
            return
        self._sender.abandon_in_child()
        try:
            self._open()
        except Exception as exc:  # e.g. no free spool slot: record() then drops, loudly
            self._closed = True
            log.error("recorder_unusable_after_fork", error=repr(exc))
            return
        # The parent's decision feed thread does not exist here: the child reads its own.
        self._view = None
        self._feed = None
        if self.options.admission:
            self._start_admission()
        self._sender.start()
        close_at_multiprocessing_exit(self)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Recorder:
        """A Recorder configured from ``Settings.kafka`` and ``Settings.producer``."""
        registry = overrides.pop("prometheus_registry", None)
        return cls(
            RecorderOptions.from_settings(settings, **overrides), prometheus_registry=registry
        )

    # -- recording -----------------------------------------------------------------------------

    def record(
        self,
        event: UsageEvent | None = None,
        /,
        *,
        provider: str | None = None,
        model: str | None = None,
        usage: Any = None,
        tags: Mapping[str, str] | None = None,
        prompt: Any = None,
        client: Any = None,
        **fields: Any,
    ) -> str | None:
        """Record one LLM call; returns its ``event_id``, or None when the event was dropped.

        Either pass a :class:`UsageEvent`, or ``provider``, ``model`` and ``usage`` (a provider
        response, usage object, or stream chunks — see :mod:`.extractors`) plus any UsageEvent
        field (``latency_ms=..., status=...``); explicit token fields win over extracted ones.
        Tags: per-call > inner ``tags()`` scope > outer scope > recorder ``default_tags``.
        ``prompt`` (the request's messages or input) sets ``prompt_hash`` (see :mod:`.prompts`);
        the text itself is not sent. ``client`` (the SDK client that made the call) sets
        ``platform`` and ``region`` where it knows them (see :mod:`.placement`).
        """
        started = time.perf_counter()
        run = current_run()
        try:
            if prompt is not None:
                fields.setdefault("prompt_hash", prompt_hash(prompt))
            for name, value in client_placement(client).items():
                fields.setdefault(name, value)
            if event is None:
                if run is not None:
                    stamp_fields(run, fields)
                event = self._build(provider, model, usage, tags, fields)
            else:
                event = self._with_scoped_tags(event)
                if run is not None:
                    event = stamp_event(run, event)
            item = encode_event(event, self.options.partition_key_tag)
            if run is not None:
                run.added(event, self._run_cost(event))
            if self._view is not None:
                self._view.note(event, item[1])
        except (EventError, UsageExtractionError, ValidationError, TypeError, ValueError) as exc:
            self._drop_invalid(exc)
            return None
        except Exception as exc:  # record() must never raise into the app
            self._drop_invalid(exc)
            return None
        return event.event_id if self._enqueue(item, started) else None

    def outcome(self, name: str, /, value: Decimal | int | str = 1, **tags: str) -> str | None:
        """Record a business outcome (``ticket_resolved``, ``conversion``) with a count or
        amount and tags (merged like ``record``'s); returns its ``event_id``, or None when
        dropped. Outcomes go to ``outcome_topic`` through their own queue and spool
        (``<spool_dir>-outcomes``); like ``record()`` this never raises into the app."""
        started = time.perf_counter()
        try:
            merged = with_run_values(current_run(), self._tags.merge(tags))
            event = OutcomeEvent(name=name, value=Decimal(str(value)), tags=merged)
            payload = event.to_json_bytes()
        except Exception as exc:  # never raise into the app
            self._drop_invalid(exc)
            return None
        key = (event.tags.get(self.options.partition_key_tag or "") or event.event_id).encode()
        return event.event_id if self._outcome_channel()._enqueue((key, payload), started) else None

    # -- agent runs ----------------------------------------------------------------------------

    @contextmanager
    def run(
        self,
        agent: str | None = None,
        customer: str | None = None,
        *,
        run_id: str | None = None,
        session_id: str | None = None,
        trace_id: str | None = None,
        parent: str | None = None,
    ) -> Iterator[Run]:
        """``with recorder.run(agent="triage", customer="acme") as run:``: every record(),
        admit(), guard() and outcome() inside carries the run's ids; ``run.cost`` is its
        running total. Propagation to threads, tasks and forks: :mod:`.runs`. Raises
        ``ValueError`` (pydantic's) at once on an invalid id."""
        run = new_run(run_id, agent, customer, session_id, trace_id, parent)
        with entered(run):
            yield run

    def _run_cost(self, event: UsageEvent) -> Decimal | None:
        """The event's cost as this process prices it (None when it cannot be priced)."""
        if self._run_pricer is None:
            from spendstream.pricing import default_pricer  # only processes that use runs

            pricer = default_pricer()

            def price(event: UsageEvent) -> Decimal | None:
                rating = pricer.rate(event)
                return rating.cost_total if rating.priced else None

            self._run_pricer = price
        try:
            return self._run_pricer(event)
        except Exception:  # record() never fails for want of a price
            return None

    def _outcome_channel(self) -> Recorder:
        with self._close_lock:
            if self._outcomes is None:
                options = self.options.model_copy(
                    update={
                        "topic": self.options.outcome_topic,
                        "spool_dir": self.options.spool_dir.rstrip("/\\") + "-outcomes",
                        "default_tags": {},
                    }
                )
                self._outcomes = Recorder(options)
            return self._outcomes

    def _build(
        self,
        provider: str | None,
        model: str | None,
        usage: Any,
        tags: Mapping[str, str] | None,
        fields: dict[str, Any],
    ) -> UsageEvent:
        if usage is not None:
            for name, value in extract_usage(usage, provider).event_fields().items():
                fields.setdefault(name, value)
        fields.update(provider=provider, model=model, tags=self._tags.merge(tags))
        return UsageEvent.model_validate(fields)

    def _with_scoped_tags(self, event: UsageEvent) -> UsageEvent:
        merged = self._tags.merge(event.tags)
        if merged == event.tags:
            return event
        return UsageEvent.model_validate({**event.model_dump(), "tags": merged})

    def _enqueue(self, item: Item, started: float) -> bool:
        """Queue the event, or spill it to the spool when the queue is full; False if dropped."""
        if self._closed:
            self._counters.drop("closed")
            self._warn("event_dropped", reason="closed")
            return False
        if len(self._queue) < self._queue_size:
            self._queue.append(item)
            self._counters.add("recorded")
            return True
        remaining = max(0.0, self._bound_s - (time.perf_counter() - started))
        try:
            appended = self._spool.append([item], lock_timeout=remaining)
        except SpoolLockTimeout:
            self._counters.drop("record_timeout")
            self._warn("event_dropped", reason="record_timeout", bound_ms=self._bound_s * 1000)
            return False
        if not appended:
            self._counters.drop("spool_full")
            self._warn("event_dropped", reason="spool_full", spool_dir=self.options.spool_dir)
            return False
        self._counters.add("recorded")
        self._counters.add("spooled")
        return True

    def _drop_invalid(self, exc: Exception) -> None:
        self._counters.drop("invalid")
        reason = describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
        self._warn("event_dropped", reason="invalid", error=reason)

    def _warn(self, message: str, **details: Any) -> None:
        now = time.monotonic()  # at most one line per second, so a bug cannot flood the logs
        if now - self._last_warning >= _WARN_INTERVAL_S:
            self._last_warning = now
            log.error(message, **details)

    # -- admission -------------------------------------------------------------------------------

    def _start_admission(self) -> AdmissionView:
        with self._close_lock:
            if self._view is None:
                from spendstream.pricing import default_pricer  # only processes that admit

                pricer = default_pricer()
                view = AdmissionView(
                    self.options.admission_stale_after_s,
                    self.options.admission_overlap_s,
                    cost_of=lambda event: pricer.rate(event).cost_total,
                )
                self._feed = DecisionFeed(
                    view, self.options.bootstrap_servers, self.options.decisions_topic
                ).start()
                self._view = view
            return self._view

    def _delivered(
        self, payloads: Sequence[bytes], topic: str, partition: int, offset: int
    ) -> None:
        """The sender's report of stored records (its thread, or Kafka's I/O thread)."""
        view = self._view
        if view is None:
            return
        try:
            view.delivered(payloads, topic, partition, offset)
        except Exception:  # admission must never disturb delivery
            self._counters.add("sender_errors")
            log.exception("admission_delivery_note_failed")

    def admit(
        self,
        model: str | None = None,
        estimated_tokens: int = 0,
        *,
        provider: str | None = None,
        estimated_units: Mapping[str, Decimal | int] | None = None,
        **tags: str,
    ) -> Decision:
        """May a call with these tags go ahead? Answered from memory (no I/O, no lock).

        Tags merge like ``record()``'s (defaults, ``tags()`` scopes, these). ``estimated_tokens``
        counts against token quotas, ``estimated_units`` (e.g. ``{"vector_queries": 40}``)
        against quotas on those usage units. The first call starts the decisions feed (or pass
        ``admission=True``); until its first snapshot arrives calls are allowed with
        ``stale=True``. See :mod:`spendstream.producers.admission` for the exact rule.
        """
        return self._admit(model, estimated_tokens, provider, tags, estimated_units)

    def _admit(
        self,
        model: str | None,
        estimated_tokens: int,
        provider: str | None,
        tags: dict[str, str],
        estimated_units: Mapping[str, Decimal | int] | None = None,
    ) -> Decision:
        view = self._view or self._start_admission()
        if self._tags.defaults or current_scopes():
            tags = self._tags.merge(tags)
        tags = with_run_values(current_run(), tags)
        return view.admit(model, estimated_tokens, tags, provider, estimated_units)

    def guard(
        self,
        model: str | None = None,
        estimated_tokens: int = 0,
        *,
        provider: str | None = None,
        estimated_units: Mapping[str, Decimal | int] | None = None,
        **tags: str,
    ) -> Guard:
        """``with recorder.guard(...):`` or ``@recorder.guard(...)``: raises
        :class:`QuotaExceeded` (with the decision) when admission denies."""
        return Guard(lambda: self._admit(model, estimated_tokens, provider, tags, estimated_units))

    # -- delivery control ----------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event recorded so far is acknowledged by the broker.

        Returns False on timeout; undelivered events stay queued or spooled (not lost).
        """
        deadline = time.monotonic() + timeout
        if self._outcomes is not None and not self._outcomes.flush(timeout):
            return False
        step = self._sender.step_count
        while not self._sender.quiet_since(step):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Deliver for up to ``timeout`` seconds, spool the rest, and stop. Idempotent.

        Returns at once when the broker is unreachable (everything is spooled). Events recorded
        after close() are dropped (``dropped{reason="closed"}``).
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        cancel_exit_hooks(self)
        if self._feed is not None:
            self._feed.close()
        if self._outcomes is not None:
            self._outcomes.close(timeout)
        self._sender.stop(timeout)

    def stats(self) -> RecorderStats:
        """Counters and current gauges (see :mod:`.stats`)."""
        return self._counters.snapshot(
            queued=len(self._queue),
            in_flight=self._sender.in_flight,
            spool_bytes=self._spool.size_bytes(),
            spool_pending=self._spool.pending(),
            broker_connected=self._sender.connected,
            spool_dir=str(self._spool.directory),
        )

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _reopen_in_child(recorder: weakref.ref[Recorder]) -> None:
    # Registered per Recorder with a weak reference, so the hook never keeps a Recorder alive.
    alive = recorder()
    if alive is not None:
        alive._after_fork_in_child()
