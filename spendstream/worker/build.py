"""Build, start and stop the stream worker: the one place where every part is constructed and
wired (the HTTP API's wiring, shared with ``spendstream serve``, is :mod:`.api`).

Four steps, each explicit:

1. :func:`load_worker_config` validates pricing, budgets, quotas and the digest (ConfigError)
   before anything is touched.
2. :func:`open_storage` connects (retrying while a server comes up), migrates and registers
   the price version the ledger rows carry.
3. :func:`build_worker` constructs every part over those clients: no thread starts, nothing is
   written. Nothing is assigned to an object after it is built.
4. :meth:`Worker.start` starts the parts in order on one :class:`contextlib.ExitStack`;
   :meth:`Worker.stop` stops them in reverse (idempotent), and :func:`run_worker` closes every
   ClickHouse client last (:class:`~spendstream.worker.clients.Clients`), on every exit path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

import faust
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from spendstream import retry
from spendstream.advice import digest_advice
from spendstream.alerts.runaway import RunawayRuns
from spendstream.alerts.service import AlertService
from spendstream.anomalies import AnomalyDetector
from spendstream.api.server import ApiServer
from spendstream.config import Settings, redact_url
from spendstream.ingest.genai import SpanConverter
from spendstream.ingest.publisher import KafkaEventPublisher
from spendstream.insights.digest import DigestJob
from spendstream.insights.outcomes import OutcomeStore
from spendstream.leadership import Elector, LeaderRole, LeaseStore
from spendstream.logs import get_logger
from spendstream.notifications.fenced import ALERTING_LEASE
from spendstream.notifications.outbox import Outbox
from spendstream.producers.admission import AdmissionView
from spendstream.producers.feed import DecisionFeed
from spendstream.quotas.engine import QuotaEngine
from spendstream.quotas.publisher import KafkaDecisionPublisher
from spendstream.quotas.service import QuotaService
from spendstream.quotas.store import QuotaStore
from spendstream.sinks.access import announce_worker
from spendstream.sinks.client import DirectoryLocked, chdb_directory, chdb_lock_holder
from spendstream.sinks.entry import OutcomeEntry
from spendstream.sinks.errors import CHDB_LOCKED, is_transient
from spendstream.sinks.first_times import first_times
from spendstream.sinks.ledger import Deferral, LedgerWriter
from spendstream.sinks.price_versions import register_price_version
from spendstream.stream import metrics
from spendstream.stream.app import (
    IDLE_BATCHES,
    KafkaDeadLetters,
    create_app,
    declare_agent,
    declare_span_agent,
    declare_topics,
)
from spendstream.stream.dlq import DlqLimit
from spendstream.stream.outcomes import OutcomeProcessor
from spendstream.stream.pipeline import BatchObserver, Pipeline, StreamPipeline, exit_process
from spendstream.stream.processor import BatchProcessor, TimeBounds
from spendstream.stream.stamps import FirstStamps
from spendstream.worker.api import Api, WorkerRoutes, build_api
from spendstream.worker.clients import Clients
from spendstream.worker.collector import tune_collector
from spendstream.worker.files import WorkerConfig, check_digest_channels, load_worker_config
from spendstream.worker.schema import migrate
from spendstream.worker.stop_signals import FaustWorker, PendingStop

log = get_logger(__name__)


def connect_with_retry(settings: Settings, open_client: Callable[[], Client]) -> Client:
    """Connect and migrate, retrying with backoff for ``worker.startup_timeout_s`` (a server
    DSN may come up after the worker); the last error is raised when time runs out."""
    policy = retry.startup(
        (OSError, ClickHouseError),
        settings.worker.startup_timeout_s,
        "ClickHouse not reachable; retrying",
    )
    for attempt in policy:
        with attempt:
            client = open_unlocked(settings.clickhouse.dsn, open_client)
            migrate(client, settings.clickhouse.cluster)
            return client
    raise AssertionError("unreachable: the startup policy re-raises its last error")


def open_unlocked(dsn: str, open_client: Callable[[], Client]) -> Client:
    """``open_client()``; :class:`DirectoryLocked` (not retried: waiting does not free it) when
    another process holds the chDB directory."""
    try:
        return open_client()
    except ClickHouseError as exc:
        directory = chdb_directory(dsn)
        if directory is None or CHDB_LOCKED not in str(exc):
            raise
        holder = chdb_lock_holder(directory)
        if holder is not None:
            raise DirectoryLocked(directory, holder) from exc
        raise


@dataclass(frozen=True)
class Storage:
    """ClickHouse, migrated, and the price version this run's ledger rows carry."""

    client: Client
    price_version: int


def open_storage(settings: Settings, config: WorkerConfig, clients: Clients) -> Storage:
    """Step 2: connect (retrying), migrate, register the price version."""
    client = connect_with_retry(settings, clients.open)
    return Storage(client, register_price_version(client, config.pricer.catalog_digest))


@dataclass
class Worker:
    """A built worker: the Faust app to run and every part :meth:`start` starts."""

    settings: Settings
    app: faust.App
    pipeline: Pipeline
    outcomes: StreamPipeline[OutcomeEntry]
    alerting: AlertService | None
    quotas: QuotaService | None
    decisions: KafkaDecisionPublisher | None  # the quota service's publisher
    # What POST /api/v1/admit answers from, and the feed of decisions that fills it.
    admission: AdmissionView | None
    feed: DecisionFeed | None
    api: Api
    server: ApiServer
    publisher: KafkaEventPublisher
    elector: Elector
    running: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def start(self) -> None:
        """Start every part, in order; on a failure, stop what started and re-raise.

        Started before Faust runs, not with its tasks: after a restart Faust may wait ~20 s for
        the group to rebalance, and the API, the outbox, periodic evaluation and quota snapshots
        do not wait for it."""
        with contextlib.ExitStack() as starting:
            starting.callback(self.pipeline.close)  # its threads start with the first batch
            starting.callback(self.outcomes.close)
            starting.callback(self.publisher.close)
            self.api.start(self.settings)
            starting.callback(self.api.close)
            self.server.start()
            starting.callback(self.server.stop)
            # Any number of workers: only the holder of the evaluator lease runs its roles.
            self.elector.start()
            starting.callback(self.elector.stop)  # stopping releases the lease
            if self.quotas is not None:
                self.quotas.start()
                starting.callback(self.quotas.stop)
            if self.decisions is not None:
                starting.callback(self.decisions.close)
            if self.feed is not None:
                self.feed.start()
                starting.callback(self.feed.close)
            announced = announce_worker(self.settings)
            if announced is not None:
                starting.callback(announced.unlink, missing_ok=True)
            self.running = starting.pop_all()

    def stop(self) -> None:
        """Stop every started part in reverse order; a second call does nothing."""
        self.running.close()


def build_alerting(
    settings: Settings, config: WorkerConfig, clients: Clients
) -> AlertService | None:
    """The alert service (evaluation, outbox, digest), or None when nothing would send."""
    alerting, digest = config.alerting, settings.digest
    notify_quotas = any(q.channels for q in config.quotas.quotas)
    reconcile_alerts = settings.reconcile.alerts.enabled  # enqueued by `reconcile alert`
    runaway = settings.agents.runaway.enabled and settings.agents.runaway.channels
    wanted = (
        alerting.budgets
        or config.anomalies
        or notify_quotas
        or digest.channels
        or reconcile_alerts
        or runaway
    )
    if not (wanted and alerting.alerts.enabled):
        log.info("alerting is off", budgets=len(alerting.budgets), enabled=alerting.alerts.enabled)
        return None
    job = DigestJob(
        Outbox(clients.open()),
        config.pricer,
        settings.insights,
        digest,
        alerting,
        digest_advice,
    )
    detector = AnomalyDetector(config.anomalies, Outbox(clients.open()))
    runaways = RunawayRuns(settings.agents.runaway, Outbox(clients.open()))
    quota_names = [q.name for q in config.quotas.quotas]
    return AlertService(alerting, clients.open, [job.run, detector.run, runaways.run], quota_names)


def build_worker(
    settings: Settings, config: WorkerConfig, storage: Storage, clients: Clients
) -> Worker:
    """Step 3: construct and wire every part (no thread starts, nothing is written)."""
    ch, worker, pricer = settings.clickhouse, settings.worker, config.pricer
    alerting = build_alerting(settings, config, clients)
    roles: list[LeaderRole] = [alerting] if alerting else []
    elector = Elector(
        LeaseStore(clients.open()),
        ALERTING_LEASE,
        roles,
        ttl_s=settings.leadership.lease_ttl_s,
        renew_every_s=settings.leadership.renew_every_s,
    )
    quotas: QuotaService | None = None
    decisions: KafkaDecisionPublisher | None = None
    admission: AdmissionView | None = None
    feed: DecisionFeed | None = None
    if config.quotas.quotas:
        guardrails = settings.guardrails
        engine = QuotaEngine(
            config.quotas,
            QuotaStore(clients.open()),
            Outbox(clients.open()) if alerting is not None else None,
        )
        decisions = KafkaDecisionPublisher(
            settings.kafka.bootstrap_servers, guardrails.decisions_topic
        )
        # Every worker decides the keys its batches touch; the periodic pass and the snapshots
        # run where the lease is held. Transitions are notified when an outbox runs.
        quotas = QuotaService(engine, decisions, guardrails, is_leader=lambda: elector.leading)
        admission = AdmissionView(  # also counts events ingested over HTTP until stored
            guardrails.stale_after_s, cost_of=lambda e: pricer.rate(e).cost_total
        )
        feed = DecisionFeed(admission, settings.kafka.bootstrap_servers, guardrails.decisions_topic)
    observers: list[BatchObserver] = [alerting.observer] if alerting else []
    observers += [quotas.observer] if quotas else []

    app = create_app(settings)
    topics = declare_topics(app, settings)
    bounds = TimeBounds.of(worker.event_max_age_days, worker.event_max_future_s)
    dlq_limit = DlqLimit(
        max_ratio=worker.dlq_max_ratio,
        ratio_window=worker.dlq_ratio_window,
        max_consecutive=worker.dlq_max_consecutive,
    )
    pipeline = Pipeline(
        BatchProcessor(
            pricer,
            bounds,
            missing_tags=settings.insights.missing_tags
            if settings.insights.untagged_policy == "dead_letter"
            else None,
            stamps=FirstStamps(
                partial(first_times, clients.open()),  # its own client: read in the parse thread
                timedelta(days=worker.event_id_lookback_days),
                transient=is_transient,
                retry_max_s=worker.sink_retry_max_s,
                stopping=lambda: app.should_stop,
            ),
        ),
        LedgerWriter(storage.client, storage.price_version, deferral=Deferral(minutes=True)),
        KafkaDeadLetters(topics.dead_letters),
        observers=observers,
        retry_max_s=worker.sink_retry_max_s,
        chunk_bytes=worker.chunk_bytes,
        dlq_limit=dlq_limit,
        stop=exit_process,
        stopping=lambda: app.should_stop,
        idle_s=IDLE_BATCHES * worker.batch_within_s,  # a steady stream settles once idle
    )
    declare_agent(app, topics.usage, pipeline, settings)
    otlp = settings.ingest.otlp
    if topics.otlp_spans is not None:
        converter = SpanConverter(otlp.tags, otlp.tag_prefix, otlp.encoding)
        declare_span_agent(app, topics.otlp_spans, pipeline, converter, settings)
    # Outcome events: the same guarantees as usage events, with their own pipeline and limit.
    outcomes = StreamPipeline(
        OutcomeProcessor(bounds),
        OutcomeStore(clients.open()),
        KafkaDeadLetters(topics.dead_letters),
        retry_max_s=worker.sink_retry_max_s,
        chunk_bytes=worker.chunk_bytes,
        dlq_limit=dlq_limit,
        stop=exit_process,
        counters=metrics.OUTCOMES,
        name="outcomes-",
        sink_name="outcomes table",
        stopping=lambda: app.should_stop,
    )
    declare_agent(app, topics.outcomes, outcomes, settings, name="process_outcomes")
    publisher = KafkaEventPublisher.from_settings(
        settings, admission.delivered if admission else None
    )
    routes = WorkerRoutes(publisher, admission, quotas, alerting.silence if alerting else None)
    api = build_api(
        settings, config.alerting, pricer, config.quotas, clients, worker.web_host, routes
    )
    server = ApiServer(api.app, worker.web_host, worker.web_port, settings.api.trusted_proxies)
    log.info(
        "worker ready",
        broker=settings.kafka.bootstrap_servers,
        topic=settings.kafka.usage_topic,
        otlp_topic=otlp.topic,
        clickhouse=redact_url(ch.dsn),
        price_version=storage.price_version,
        holder=elector.holder,
        web=f"http://{worker.web_host}:{worker.web_port}",
    )
    return Worker(
        settings,
        app,
        pipeline,
        outcomes,
        alerting,
        quotas,
        decisions,
        admission,
        feed,
        api,
        server,
        publisher,
        elector,
    )


def run_worker(settings: Settings) -> None:
    """Block running the worker; returns after a clean shutdown on SIGINT or SIGTERM."""
    config = load_worker_config(settings)
    ch = settings.clickhouse
    with Clients(ch.dsn, ch.database) as clients:
        worker = build_worker(settings, config, open_storage(settings, config, clients), clients)
        tune_collector()  # the hot path's cyclic-GC cost (worker.collector)
        pending = PendingStop()
        pending.watch()  # health answers from here on: a stop now must not kill the process
        worker.start()
        try:
            runner = FaustWorker(
                worker.app,
                pending=pending,
                loglevel=settings.log.level,
                quiet=True,
                override_logging=False,
            )
            with contextlib.suppress(SystemExit):
                runner.execute_from_commandline()
        finally:
            worker.stop()
    log.info("worker stopped")


__all__ = [
    "Storage",
    "Worker",
    "WorkerConfig",
    "build_worker",
    "check_digest_channels",
    "connect_with_retry",
    "load_worker_config",
    "open_storage",
    "run_worker",
]
