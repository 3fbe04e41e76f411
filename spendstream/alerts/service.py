"""Budget alerting inside the stream worker: :class:`AlertService` (wired by ``worker.build``).

- A :class:`BudgetObserver` on the pipeline notes which budgets each batch touches (pure
  Python scope matching; no I/O on the hot path) and wakes the evaluation thread.
- The evaluation thread computes those budgets' figures from ``ledger FINAL`` and records
  alerts; it also evaluates every budget at start-up and every ``evaluate_every`` (new periods,
  forecasts, spikes, reminders, re-ratings, and anything a crash interrupted).
- The dispatcher thread delivers the outbox with retries; the worker's web layer calls
  :meth:`AlertService.silence`.

Free of Faust: the worker starts and stops the threads and serves the HTTP views. The service
is a :class:`~spendstream.leadership.LeaderRole`: with several workers, only the one holding
the ``evaluator`` lease runs the threads, and its dispatcher checks the lease's fence before
every send.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from spendstream.alerts.config import Alerting, BudgetConfig
from spendstream.alerts.evaluator import BudgetEvaluator
from spendstream.alerts.silences import SilenceRequest, Subjects, apply_silence
from spendstream.leadership import Fence
from spendstream.logs import get_logger
from spendstream.matching import values_match, values_reader
from spendstream.notifications.delivery import Dispatcher
from spendstream.notifications.outbox import Outbox
from spendstream.periods import utc_now
from spendstream.sinks.entry import LedgerEntry

log = get_logger(__name__)


# Batches come back to back under load (~3 a second at one event per message), each marking the
# same budgets, and each evaluation read the ledger's open hour again: ~26 ms of ClickHouse CPU
# per batch (docs/benchmarks-ingest.md, "what ClickHouse does per batch"). Marked budgets are
# evaluated at once after a quiet spell, then at most this often while batches keep coming.
COALESCE_S = 0.5


class EvaluationLoop:
    """Evaluates budgets marked dirty as soon as they are (at most every ``coalesce_s`` while
    batches keep marking them), and all of them periodically."""

    def __init__(
        self,
        evaluator: BudgetEvaluator,
        every_s: float,
        dispatcher: Dispatcher,
        jobs: Sequence[Callable[[datetime], object]] = (),
        coalesce_s: float = COALESCE_S,
    ) -> None:
        self.evaluator = evaluator
        self.every_s = every_s
        self.coalesce_s = coalesce_s
        self.dispatcher = dispatcher
        self.jobs = jobs  # run on every full pass (e.g. the digest); truthy result: new outbox rows
        self.dirty: set[str] = set()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopped = threading.Event()

    def mark(self, names: set[str]) -> None:
        with self.lock:
            self.dirty |= names
        self.wake.set()

    def run(self, stopped: threading.Event | None = None) -> None:
        """Loop until :meth:`stop` (or ``stopped`` is set)."""
        stopped = stopped or self.stopped
        names: set[str] | None = None  # None: every budget (first pass and periodic passes)
        last_full = time.monotonic()
        last_marked = -float("inf")  # when the last evaluation of marked budgets began
        while not stopped.is_set():
            if names:
                last_marked = time.monotonic()
            try:
                created = bool(self.evaluator.evaluate(names))
                for job in self.jobs if names is None else ():
                    created = bool(job(utc_now())) or created
                if created:
                    # New deliveries become due once the grouping wait has passed.
                    wait = self.evaluator.alerting.alerts.group_wait.total_seconds()
                    timer = threading.Timer(wait, self.dispatcher.wake_event.set)
                    timer.daemon = True
                    timer.start()
            except Exception as exc:
                log.warning("budget evaluation failed; retrying", error=str(exc)[:300])
                if names is not None:
                    self.mark(names)
                stopped.wait(1.0)
            self.wake.wait(max(0.0, last_full + self.every_s - time.monotonic()))
            # Coalesce back-to-back batches' marks (COALESCE_S), never past the next full pass.
            hold = min(last_marked + self.coalesce_s, last_full + self.every_s) - time.monotonic()
            if hold > 0:
                stopped.wait(hold)
            if stopped.is_set():
                # This term is over: the marks and the wake-up are the next term's (a new
                # leader's loop shares them), so take neither.
                break
            self.wake.clear()  # after the hold: marks made during it are taken now
            with self.lock:
                names, self.dirty = set(self.dirty), set()
            # Steady traffic keeps waking us: still evaluate everything every `every_s`.
            if time.monotonic() - last_full >= self.every_s:
                names, last_full = None, time.monotonic()

    def stop(self) -> None:
        self.stopped.set()
        self.wake.set()


class BudgetObserver:
    """The pipeline's :class:`~spendstream.stream.pipeline.BatchObserver` for budgets.

    Matches each distinct combination of scoped tag values once, not each event: a batch of
    thousands of events usually holds a handful of combinations.
    """

    def __init__(self, budgets: Sequence[BudgetConfig], loop: EvaluationLoop) -> None:
        self.budgets = budgets
        self.loop = loop
        self.keys = sorted({key for budget in budgets for key in budget.scope_filters})
        self.read = values_reader(self.keys)  # each event's values of self.keys

    async def on_batch(self, entries: Sequence[LedgerEntry]) -> None:
        read = self.read
        combos = {read(entry.event) for entry in entries}
        tagged = [dict(zip(self.keys, combo, strict=True)) for combo in combos]
        touched = {
            budget.name
            for budget in self.budgets
            if any(values_match(budget.scope_filters, values) for values in tagged)
        }
        if touched:
            self.loop.mark(touched)


class AlertService:
    """The evaluation and delivery threads of one worker, run while it holds leadership."""

    def __init__(
        self,
        alerting: Alerting,
        connect: Callable[[], Client],
        jobs: Sequence[Callable[[datetime], object]] = (),
        quotas: Sequence[str] = (),
    ) -> None:
        """``connect`` opens a ClickHouse client; each thread gets its own. ``jobs`` run on the
        evaluation thread at every full pass (the worker passes the digest); ``quotas`` are
        the quota names a silence may name besides the budgets."""
        self.alerting = alerting
        self.subjects = Subjects.of(alerting, quotas)
        self.stop_event = threading.Event()  # the current term's; replaced by each start
        self.dispatcher = Dispatcher(Outbox(connect()), alerting.alerts)
        self.evaluator = BudgetEvaluator(alerting, Outbox(connect()))
        self.loop = EvaluationLoop(
            self.evaluator,
            alerting.alerts.evaluate_every.total_seconds(),
            self.dispatcher,
            jobs,
        )
        self.observer = BudgetObserver(alerting.budgets, self.loop)
        self.web_store = Outbox(connect())
        self.threads: list[threading.Thread] = []

    def start(self, fence: Fence | None = None) -> None:
        """Start both threads for one term; with ``fence``, sends stop as soon as it lapses.

        Each term gets its own stop event and fence, so threads of an earlier term that are
        still finishing (a slow send) stop after it and can never send again; the new
        delivery thread first waits for them, so an in-flight send records its outcome before
        anything is sent twice.
        """
        self.stop()
        stop = threading.Event()
        self.stop_event = stop
        earlier = [thread for thread in self.threads if thread.is_alive()]

        def may_send() -> bool:
            return fence is None or fence.valid(fence.margin_s)

        def deliver() -> None:
            for thread in earlier:
                thread.join()
            self.dispatcher.run(stop, may_send)

        self.threads = [
            threading.Thread(target=self.loop.run, args=(stop,), name="alert-eval", daemon=True),
            threading.Thread(target=deliver, name="alert-send", daemon=True),
        ]
        for thread in self.threads:
            thread.start()
        log.info("alerting started", budgets=[b.name for b in self.alerting.budgets])

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop both threads, letting an in-flight send record its outcome (waits at most
        ``timeout_s``; a thread still sending then finishes on its own and sends no more)."""
        self.stop_event.set()
        self.loop.wake.set()
        self.dispatcher.wake_event.set()
        deadline = time.monotonic() + timeout_s
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def silence(self, body: dict[str, Any]) -> dict[str, Any]:
        silence = apply_silence(
            self.web_store, self.subjects, SilenceRequest.model_validate(body), utc_now()
        )
        self.dispatcher.wake_event.set()
        return silence.model_dump(mode="json")
