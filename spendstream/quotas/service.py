"""Quota decisions inside the stream worker: :class:`QuotaService` (wired by ``worker.build``).

- :class:`QuotaObserver` (a pipeline ``BatchObserver``) notes which quota keys each batch
  touched (pure Python scope matching, once per distinct tag combination) and wakes the thread.
- It also notes how far the ledger is complete (:class:`LedgerProgress`); every update carries
  that point, taken before the ledger is read (``DecisionsMessage.stored``), so SDK processes
  keep counting their own calls the ledger does not hold yet, however far the worker lags.
- The quota thread decides those keys from ``ledger FINAL`` and publishes them ("update").
  Every worker does this for its own batches: decisions are idempotent (a pure function of the
  ledger at ``as_of``) and readers keep the highest ``as_of`` per key, so several publishers
  are safe.
- When ``is_leader()`` holds (the composition root decides: always, or the elected evaluator),
  the same thread also re-decides every known key each ``evaluate_every_s`` (periods roll over
  and overrides expire with no traffic) and publishes a full snapshot each ``snapshot_every_s``.

Free of Faust; :meth:`QuotaService.start` / :meth:`stop` are called by the worker.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Protocol

from spendstream.config import GuardrailSettings
from spendstream.decisions import DecisionsMessage, QuotaDecision, StoredOffsets, group_key
from spendstream.logs import get_logger
from spendstream.matching import values_match, values_reader
from spendstream.periods import utc_now
from spendstream.quotas.config import Quotas
from spendstream.quotas.engine import QuotaEngine, Touched
from spendstream.quotas.overrides import OverrideRequest, apply_override
from spendstream.quotas.progress import LedgerProgress
from spendstream.sinks.entry import LedgerEntry

log = get_logger(__name__)


class DecisionPublisher(Protocol):
    def publish(self, message: DecisionsMessage) -> None:
        """Publish durably (acknowledged by the broker) or raise."""
        ...


class QuotaLoop:
    """The quota thread: dirty keys as soon as they are marked; full passes when leading."""

    def __init__(
        self,
        engine: QuotaEngine,
        publisher: DecisionPublisher,
        settings: GuardrailSettings,
        is_leader: Callable[[], bool],
    ) -> None:
        self.engine = engine
        self.publisher = publisher
        self.settings = settings
        self.is_leader = is_leader
        self.progress = LedgerProgress()
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.dirty: dict[str, set[str]] = defaultdict(set)
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopped = threading.Event()

    def mark(self, touched: Touched) -> None:
        with self.lock:
            for quota, keys in touched.items():
                self.dirty[quota] |= keys
        self.wake.set()

    def publish(
        self,
        kind: str,
        decisions: Sequence[QuotaDecision],
        stored: tuple[StoredOffsets, ...] = (),
    ) -> None:
        """``stored``: the ledger's completeness taken before ``decisions`` were read (a
        snapshot re-sends older decisions, so it claims nothing: ``()``)."""
        specs = tuple(q.spec() for q in self.engine.quotas.quotas) if kind == "snapshot" else ()
        self.publisher.publish(
            DecisionsMessage(
                kind="snapshot" if kind == "snapshot" else "update",
                published_at=utc_now(),
                publisher=self.name,
                specs=specs,
                decisions=tuple(decisions),
                stored=stored,
            )
        )

    def step(self, full: bool, snapshot: bool) -> None:
        with self.lock:
            dirty, self.dirty = dict(self.dirty), defaultdict(set)
        try:
            for touched in ([dirty] if dirty else []) + ([None] if full else []):
                stored = self.progress.snapshot()  # before decide() reads the ledger
                decided = self.engine.decide(touched)
                self.publish("update", decided, stored)
                self.engine.commit(decided)
            if full:
                self.engine.prune()
            if snapshot:
                self.publish("snapshot", self.engine.decisions())
        except Exception as exc:
            log.warning("quota decisions failed; retrying", error=str(exc)[:300])
            self.mark(dirty)
            self.stopped.wait(1.0)

    def run(self) -> None:
        every, snap_every = self.settings.evaluate_every_s, self.settings.snapshot_every_s
        next_full = next_snap = time.monotonic()
        while not self.stopped.is_set():
            now = time.monotonic()
            leading = self.is_leader()
            full, snapshot = leading and now >= next_full, leading and now >= next_snap
            self.step(full, snapshot)
            if full:
                next_full = now + every
            if snapshot:
                next_snap = now + snap_every
            timeout = min(next_full, next_snap) - time.monotonic() if leading else snap_every
            self.wake.wait(max(0.0, timeout))
            self.wake.clear()

    def stop(self) -> None:
        self.stopped.set()
        self.wake.set()


class QuotaObserver:
    """The pipeline's ``BatchObserver`` for quotas: marks the keys a batch touched."""

    def __init__(self, quotas: Quotas, loop: QuotaLoop) -> None:
        self.quotas = quotas.quotas
        self.loop = loop
        self.keys = sorted({k for q in self.quotas for k in (*q.scope_filters, *q.group_by)})
        self.read = values_reader(self.keys)  # each event's values of self.keys

    async def on_batch(self, entries: Sequence[LedgerEntry]) -> None:
        self.loop.progress.note(entries)  # before mark(): the decisions it wakes include them
        read = self.read
        combos = {read(entry.event) for entry in entries}
        touched: dict[str, set[str]] = defaultdict(set)
        for combo in combos:
            values = dict(zip(self.keys, combo, strict=True))
            for quota in self.quotas:
                if values_match(quota.scope_filters, values):
                    touched[quota.name].add(group_key(tuple(quota.group_by), values))
        if touched:
            self.loop.mark(touched)


class QuotaService:
    """The quota thread of one worker and the operations the web layer calls."""

    def __init__(
        self,
        engine: QuotaEngine,
        publisher: DecisionPublisher,
        settings: GuardrailSettings,
        is_leader: Callable[[], bool] = lambda: True,
    ) -> None:
        self.engine = engine
        self.loop = QuotaLoop(engine, publisher, settings, is_leader)
        self.observer = QuotaObserver(engine.quotas, self.loop)
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Load the stored decisions, then run the quota thread."""
        self.engine.load()
        self.thread = threading.Thread(target=self.loop.run, name="quotas", daemon=True)
        self.thread.start()
        log.info("quotas started", quotas=[q.name for q in self.engine.quotas.quotas])

    def stop(self, timeout_s: float = 10.0) -> None:
        self.loop.stop()
        if self.thread is not None:
            self.thread.join(timeout_s)
            self.thread = None

    def override(self, request: OverrideRequest) -> dict[str, object]:
        """Record an override or reset and re-decide its key now (web layer, own thread)."""
        override = apply_override(self.engine.store, self.engine.quotas, request, utc_now())
        self.engine.forget_overrides()
        self.loop.mark({override.quota: {override.key}})
        return {"override_id": override.override_id, "until": override.until.isoformat()}
