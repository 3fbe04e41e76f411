"""Build and run the stream worker: the one place where every part is constructed and wired.

Order: validate the configuration (pricing, budgets) before touching anything; connect and
migrate ClickHouse; register the price version; build the alert service, the Faust app, its
topics and the dead-letter publisher; hand them all to the pipeline's constructor; declare the
agent; build the HTTP API (served by uvicorn in its own thread, not by Faust, whose web server
stays off). Nothing is assigned to an object after it is built.
"""

from __future__ import annotations

import asyncio
import atexit
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import faust
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from spendstream import retry
from spendstream.advice import advice_router, digest_advice
from spendstream.advice.service import Advisor
from spendstream.alerts.config import Alerting, load_alerting
from spendstream.alerts.service import AlertService
from spendstream.anomalies import AnomalyDetector, anomalies_router, load_anomalies
from spendstream.api import create_api
from spendstream.api.server import ApiServer, api_reader, dashboard_mounts, standard_deps
from spendstream.auth.bootstrap import ensure_admin_token
from spendstream.config import ConfigError, Settings, redact_url
from spendstream.ingest.genai import SpanConverter
from spendstream.ingest.http import ingest_router
from spendstream.ingest.publisher import KafkaEventPublisher
from spendstream.insights.digest import DigestJob
from spendstream.insights.http import insights_router
from spendstream.insights.outcomes import OutcomeStore
from spendstream.leadership import Elector, LeaderRole, LeaseStore
from spendstream.logs import get_logger
from spendstream.notifications.fenced import ALERTING_LEASE
from spendstream.notifications.outbox import Outbox
from spendstream.pricing import Pricer, load_pricer
from spendstream.producers.admission import AdmissionView
from spendstream.producers.feed import DecisionFeed
from spendstream.quotas.config import Quotas, load_quotas
from spendstream.quotas.engine import QuotaEngine
from spendstream.quotas.http import quota_router, quota_status_router
from spendstream.quotas.publisher import KafkaDecisionPublisher
from spendstream.quotas.service import QuotaService
from spendstream.quotas.store import QuotaStore
from spendstream.reconcile.http import reconcile_router
from spendstream.reconcile.ledger_side import account_maps
from spendstream.sinks.access import announce_worker
from spendstream.sinks.client import connect
from spendstream.sinks.entry import OutcomeEntry
from spendstream.sinks.ledger import LedgerWriter, register_price_version
from spendstream.stream import metrics
from spendstream.stream.app import (
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
from spendstream.worker.schema import migrate

log = get_logger(__name__)
INGEST_PATH = "/api/v1/events"


def connect_with_retry(settings: Settings) -> Client:
    """Connect and migrate, retrying with backoff for ``worker.startup_timeout_s`` (a server
    DSN may come up after the worker); the last error is raised when time runs out."""
    ch = settings.clickhouse
    policy = retry.startup(
        (OSError, ClickHouseError),
        settings.worker.startup_timeout_s,
        "ClickHouse not reachable; retrying",
    )
    for attempt in policy:
        with attempt:
            client = connect(ch.dsn, ch.database)
            migrate(client, ch.cluster)
            return client
    raise AssertionError("unreachable: the startup policy re-raises its last error")


def check_digest_channels(settings: Settings, alerting: Alerting) -> None:
    """Every ``[digest] channels`` name is an ``[alerts.channels]`` entry (ConfigError)."""
    unknown = [c for c in settings.digest.channels if c not in alerting.alerts.channels]
    if unknown:
        raise ConfigError(
            f"{alerting.source}: digest.channels = {unknown}: not in [alerts.channels] "
            f"({', '.join(alerting.alerts.channels) or 'none defined'}); define them there"
        )


@dataclass(frozen=True)
class Worker:
    """A built worker: the Faust app to run and what must be closed after it stops."""

    app: faust.App
    pipeline: Pipeline
    alerting: AlertService | None
    quotas: QuotaService | None
    # What POST /api/v1/admit answers from (spendstream.quotas.http.quota_router(admission)).
    admission: AdmissionView | None
    api: ApiServer
    publisher: KafkaEventPublisher
    elector: Elector
    outcomes: StreamPipeline[OutcomeEntry]


def build_quotas(
    settings: Settings, quotas: Quotas, outbox: bool, is_leader: Callable[[], bool]
) -> QuotaService | None:
    """The quota service, or None without quotas. ``outbox``: transitions are notified (an
    alert dispatcher runs on the leader). Every worker decides the keys its batches touch;
    the periodic pass and the snapshots run where ``is_leader()`` holds."""
    if not quotas.quotas:
        return None
    ch = settings.clickhouse
    engine = QuotaEngine(
        quotas,
        QuotaStore(connect(ch.dsn, ch.database)),
        Outbox(connect(ch.dsn, ch.database)) if outbox else None,
    )
    publisher = KafkaDecisionPublisher(
        settings.kafka.bootstrap_servers, settings.guardrails.decisions_topic
    )
    return QuotaService(engine, publisher, settings.guardrails, is_leader=is_leader)


def build_worker(settings: Settings) -> Worker:
    """Construct and wire every part. Raises ConfigError before touching anything."""
    pricer = load_pricer(settings)
    alerting_config = load_alerting(settings, settings.source)
    anomaly_rules = load_anomalies(settings, alerting_config, settings.source)
    quotas_config = load_quotas(settings, settings.source)
    notify_quotas = any(q.channels for q in quotas_config.quotas)
    check_digest_channels(settings, alerting_config)
    ch = settings.clickhouse
    client = connect_with_retry(settings)
    price_version = register_price_version(client, pricer.catalog_digest)

    alerting: AlertService | None = None
    digest = settings.digest
    reconcile_alerts = settings.reconcile.alerts.enabled  # enqueued by `reconcile alert`
    if (
        alerting_config.budgets
        or anomaly_rules
        or notify_quotas
        or digest.channels
        or reconcile_alerts
    ) and alerting_config.alerts.enabled:
        job = DigestJob(
            Outbox(connect(ch.dsn, ch.database)),
            pricer,
            settings.insights,
            digest,
            alerting_config,
            digest_advice,
        )
        detector = AnomalyDetector(anomaly_rules, Outbox(connect(ch.dsn, ch.database)))
        alerting = AlertService(
            alerting_config, lambda: connect(ch.dsn, ch.database), [job.run, detector.run]
        )
    else:
        log.info(
            "alerting is off",
            budgets=len(alerting_config.budgets),
            enabled=alerting_config.alerts.enabled,
        )
    roles: list[LeaderRole] = [alerting] if alerting else []
    elector = Elector(
        LeaseStore(connect(ch.dsn, ch.database)),
        ALERTING_LEASE,
        roles,
        ttl_s=settings.leadership.lease_ttl_s,
        renew_every_s=settings.leadership.renew_every_s,
    )
    quotas = build_quotas(
        settings, quotas_config, outbox=alerting is not None, is_leader=lambda: elector.leading
    )
    observers: list[BatchObserver] = [alerting.observer] if alerting else []
    observers += [quotas.observer] if quotas else []

    app = create_app(settings)
    topics = declare_topics(app, settings)
    worker = settings.worker
    bounds = TimeBounds(
        max_age=timedelta(days=worker.event_max_age_days),
        max_future=timedelta(seconds=worker.event_max_future_s),
    )
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
        ),
        LedgerWriter(client, price_version),
        KafkaDeadLetters(topics.dead_letters),
        observers=observers,
        retry_max_s=settings.worker.sink_retry_max_s,
        chunk_bytes=settings.worker.chunk_bytes,
        dlq_limit=dlq_limit,
        stop=exit_process,
    )
    declare_agent(app, topics.usage, pipeline, settings)
    otlp = settings.ingest.otlp
    if topics.otlp_spans is not None:
        converter = SpanConverter(otlp.tags, otlp.tag_prefix, otlp.encoding)
        declare_span_agent(app, topics.otlp_spans, pipeline, converter, settings)
    # Outcome events: the same guarantees as usage events, with their own pipeline and limit.
    outcomes = StreamPipeline(
        OutcomeProcessor(bounds),
        OutcomeStore(connect(ch.dsn, ch.database)),
        KafkaDeadLetters(topics.dead_letters),
        retry_max_s=worker.sink_retry_max_s,
        chunk_bytes=worker.chunk_bytes,
        dlq_limit=dlq_limit,
        stop=exit_process,
        counters=metrics.OUTCOMES,
        name="outcomes-",
        sink_name="outcomes table",
    )
    declare_agent(app, topics.outcomes, outcomes, settings, name="process_outcomes")
    # Any number of workers: only the holder of the evaluator lease runs these roles.
    declare_lifecycle(app, elector.start, elector.stop)  # stopping releases the lease
    admission: AdmissionView | None = None
    if quotas is not None:
        declare_lifecycle(app, quotas.start, quotas.stop)
        admission = AdmissionView(  # also counts events ingested over HTTP until stored
            settings.guardrails.stale_after_s, cost_of=lambda e: pricer.rate(e).cost_total
        )
        feed = DecisionFeed(
            admission, settings.kafka.bootstrap_servers, settings.guardrails.decisions_topic
        )
        feed.start()
        atexit.register(feed.close)
    api, publisher = build_api(
        settings, alerting_config, pricer, alerting, quotas_config, quotas, admission
    )
    log.info(
        "worker ready",
        broker=settings.kafka.bootstrap_servers,
        topic=settings.kafka.usage_topic,
        otlp_topic=otlp.topic,
        clickhouse=redact_url(ch.dsn),
        price_version=price_version,
        holder=elector.holder,
        web=f"http://{settings.worker.web_host}:{settings.worker.web_port}",
    )
    return Worker(app, pipeline, alerting, quotas, admission, api, publisher, elector, outcomes)


def build_api(
    settings: Settings,
    alerting_config: Alerting,
    pricer: Pricer,
    alerting: AlertService | None,
    quotas_config: Quotas,
    quotas: QuotaService | None,
    admission: AdmissionView | None,
) -> tuple[ApiServer, KafkaEventPublisher]:
    """The HTTP API with every part's routes: ingest (``POST /api/v1/events``, publishing to
    Kafka), reconciliation, and, with quotas, admission and overrides; over one read-only query
    pool; the admin token file when set."""
    reader = api_reader(settings)
    publisher = KafkaEventPublisher.from_settings(
        settings, admission.delivered if admission else None
    )
    http = settings.ingest.http
    dashboard = dashboard_mounts(settings, alerting_config)
    deps = standard_deps(
        settings,
        alerting_config,
        pricer,
        silence=alerting.silence if alerting else None,
        metrics=metrics.REGISTRY,
        routers=[
            reconcile_router(lambda: reader, pricer, account_maps(settings.reconcile)),
            quota_status_router(reader, quotas_config),
            *dashboard["routers"],
        ],
        root_routers=[
            ingest_router(
                publisher,
                http,
                settings.producer.partition_key_tag,
                admission.note if admission else None,
            ),
            insights_router(reader, pricer, settings.insights),
            advice_router(
                Advisor(reader, pricer, settings.insights),
                lambda: connect(settings.clickhouse.dsn, settings.clickhouse.database),
            ),
            anomalies_router(
                reader, lambda: connect(settings.clickhouse.dsn, settings.clickhouse.database)
            ),
            *([quota_router(admission, quotas.override)] if quotas and admission else []),
        ],
        body_limits={INGEST_PATH: http.max_body_bytes},
        reader=reader,
        pages=dashboard["pages"],
    )
    if settings.api.admin_token_file and ensure_admin_token(
        deps.tokens, Path(settings.api.admin_token_file)
    ):
        log.info("admin token created", path=settings.api.admin_token_file)
    server = ApiServer(
        create_api(deps),
        settings.worker.web_host,
        settings.worker.web_port,
        settings.api.trusted_proxies,
    )
    return server, publisher


def declare_lifecycle(app: faust.App, start: Callable[[], None], stop: Callable[[], None]) -> None:
    """Call ``start`` now and ``stop`` (off the event loop: it may join threads) with the app.

    Started now, not with Faust's tasks: after a restart Faust may wait ~20 s for the group to
    rebalance, and the outbox, periodic evaluation and quota snapshots do not wait for it.
    """
    start()
    atexit.register(stop)

    @app.task
    async def stop_on_shutdown() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.get_running_loop().run_in_executor(None, stop)


def run_worker(settings: Settings) -> None:
    """Block running the worker; returns after a clean shutdown on SIGINT or SIGTERM."""
    worker = build_worker(settings)
    worker.api.start()
    announced = announce_worker(settings)
    runner = faust.Worker(
        worker.app, loglevel=settings.log.level, quiet=True, override_logging=False
    )
    try:
        runner.execute_from_commandline()
    except SystemExit:
        pass
    finally:
        worker.api.stop()
        worker.publisher.close()
        worker.pipeline.close()
        worker.outcomes.close()
        if announced is not None:
            announced.unlink(missing_ok=True)
        log.info("worker stopped")


__all__ = ["Worker", "build_worker", "connect_with_retry", "run_worker"]
