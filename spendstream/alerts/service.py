"""Budget alerting inside the stream worker: :func:`attach`.

- A :class:`BudgetObserver` on the pipeline notes which budgets each batch touches (pure
  Python scope matching; no I/O on the hot path) and wakes the evaluation thread.
- The evaluation thread computes those budgets' figures from ``ledger FINAL`` and records
  alerts; it also evaluates every budget at start-up and every ``evaluate_every`` (new periods,
  forecasts, spikes, reminders, re-ratings, and anything a crash interrupted).
- The dispatcher thread delivers the outbox with retries; a Faust page accepts silences.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faust
from faust.web import Request, Response, View
from pydantic import ValidationError

from spendstream.alerts.config import Alerting, BudgetConfig, load_alerting
from spendstream.alerts.delivery import Dispatcher
from spendstream.alerts.evaluator import BudgetEvaluator
from spendstream.alerts.records import utc_now
from spendstream.alerts.scope import event_value, values_match
from spendstream.alerts.silences import SilenceRequest, apply_silence
from spendstream.alerts.store import AlertStore
from spendstream.config import Settings
from spendstream.logs import get_logger
from spendstream.sinks.client import connect
from spendstream.sinks.ledger import LedgerEntry
from spendstream.sinks.migrations import migrate
from spendstream.stream.pipeline import Pipeline

log = get_logger(__name__)


class EvaluationLoop:
    """Evaluates budgets marked dirty as soon as they are, and all of them periodically."""

    def __init__(self, evaluator: BudgetEvaluator, every_s: float, dispatcher: Dispatcher) -> None:
        self.evaluator = evaluator
        self.every_s = every_s
        self.dispatcher = dispatcher
        self.dirty: set[str] = set()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopped = threading.Event()

    def mark(self, names: set[str]) -> None:
        with self.lock:
            self.dirty |= names
        self.wake.set()

    def run(self) -> None:
        names: set[str] | None = None  # None: every budget (first pass and periodic passes)
        last_full = time.monotonic()
        while not self.stopped.is_set():
            try:
                if self.evaluator.evaluate(names):
                    # New deliveries become due once the grouping wait has passed.
                    wait = self.evaluator.alerting.alerts.group_wait.total_seconds()
                    timer = threading.Timer(wait, self.dispatcher.wake_event.set)
                    timer.daemon = True
                    timer.start()
            except Exception as exc:
                log.warning("budget evaluation failed; retrying", error=str(exc)[:300])
                if names is not None:
                    self.mark(names)
                self.stopped.wait(1.0)
            self.wake.wait(max(0.0, last_full + self.every_s - time.monotonic()))
            self.wake.clear()
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

    async def on_batch(self, entries: Sequence[LedgerEntry]) -> None:
        combos = {tuple(event_value(e.event, key) for key in self.keys) for e in entries}
        tagged = [dict(zip(self.keys, combo, strict=True)) for combo in combos]
        touched = {
            budget.name
            for budget in self.budgets
            if any(values_match(budget.scope_filters, values) for values in tagged)
        }
        if touched:
            self.loop.mark(touched)


class AlertService:
    """The evaluation and delivery threads of one worker."""

    def __init__(self, alerting: Alerting, dsn: str, database: str) -> None:
        self.alerting = alerting
        migrate(connect(dsn, database))
        self.dispatcher = Dispatcher(AlertStore(connect(dsn, database)), alerting.alerts)
        self.evaluator = BudgetEvaluator(alerting, AlertStore(connect(dsn, database)))
        self.loop = EvaluationLoop(
            self.evaluator, alerting.alerts.evaluate_every.total_seconds(), self.dispatcher
        )
        self.observer = BudgetObserver(alerting.budgets, self.loop)
        self.web_store = AlertStore(connect(dsn, database))
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for name, target in (("alert-eval", self.loop.run), ("alert-send", self.dispatcher.run)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self.threads.append(thread)
        log.info("alerting started", budgets=[b.name for b in self.alerting.budgets])

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop both threads, letting an in-flight send record its outcome."""
        self.loop.stop()
        self.dispatcher.stop()
        for thread in self.threads:
            thread.join(timeout_s)
        self.threads.clear()

    def silence(self, body: dict[str, Any]) -> dict[str, Any]:
        silence = apply_silence(
            self.web_store, self.alerting, SilenceRequest.model_validate(body), utc_now()
        )
        self.dispatcher.wake_event.set()
        return silence.model_dump(mode="json")


def attach(
    app: faust.App, pipeline: Pipeline, settings: Settings, config_path: str | Path | None = None
) -> AlertService | None:
    """Wire budget alerting into a worker; a no-op (None) when no budgets are configured.

    Raises :class:`spendstream.config.ConfigError` for invalid ``[[budgets]]``/``[alerts]``.
    """
    alerting = load_alerting(settings, config_path)
    if not alerting.budgets or not alerting.alerts.enabled:
        log.info("alerting is off", budgets=len(alerting.budgets), enabled=alerting.alerts.enabled)
        return None
    service = AlertService(alerting, settings.clickhouse.dsn, settings.clickhouse.database)
    pipeline.observers.append(service.observer)
    web_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alerts-web")

    # Started now, not with Faust's tasks: after a restart Faust may wait ~20 s for the group
    # to rebalance, and the outbox and periodic evaluation do not depend on Kafka.
    service.start()
    atexit.register(service.stop)

    @app.task
    async def stop_alerting_on_shutdown() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            service.stop()

    @app.page("/alerts/silences")
    class SilenceView(View):
        async def post(self, request: Request) -> Response:
            body = await request.json()
            loop = asyncio.get_running_loop()
            try:
                done = await loop.run_in_executor(web_executor, service.silence, body)
            except (ValidationError, KeyError) as exc:
                return self.json({"error": str(exc)}, status=400)
            return self.json(done)

    return service
