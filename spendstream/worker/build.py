"""Build and run the stream worker: the one place where every part is constructed and wired.

Order: validate the configuration (pricing, budgets) before touching anything; connect and
migrate ClickHouse; register the price version; build the alert service, the Faust app, its
topics and the dead-letter publisher; hand them all to the pipeline's constructor; declare the
agent and the web views. Nothing is assigned to an object after it is built.
"""

from __future__ import annotations

import asyncio
import atexit
import time
from dataclasses import dataclass
from datetime import timedelta

import faust
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from spendstream.alerts.config import Alerting, load_alerting
from spendstream.alerts.service import AlertService
from spendstream.alerts.store import AlertStore
from spendstream.config import ConfigError, Settings
from spendstream.insights.digest import DigestJob
from spendstream.insights.outcomes import OutcomeStore
from spendstream.logs import get_logger
from spendstream.pricing import load_pricer
from spendstream.sinks.access import announce_worker
from spendstream.sinks.client import connect
from spendstream.sinks.ledger import LedgerWriter, register_price_version
from spendstream.stream.app import (
    KafkaDeadLetters,
    create_app,
    declare_agent,
    declare_outcome_agent,
    declare_topics,
)
from spendstream.stream.dlq import DlqLimit
from spendstream.stream.pipeline import BatchObserver, Pipeline, exit_process
from spendstream.stream.processor import BatchProcessor, TimeBounds
from spendstream.worker.outcomes import OutcomeHandler
from spendstream.worker.schema import migrate
from spendstream.worker.web import declare_views

log = get_logger(__name__)


def connect_with_retry(settings: Settings) -> Client:
    """Connect and migrate, retrying with backoff for ``worker.startup_timeout_s`` (a server
    DSN may come up after the worker); the last error is raised when time runs out."""
    ch = settings.clickhouse
    deadline = time.monotonic() + settings.worker.startup_timeout_s
    delay = 0.5
    while True:
        try:
            client = connect(ch.dsn, ch.database)
            migrate(client)
            return client
        except (OSError, ClickHouseError) as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("ClickHouse not reachable; retrying", error=str(exc)[:200], retry_in=delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


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


def build_worker(settings: Settings) -> Worker:
    """Construct and wire every part. Raises ConfigError before touching anything."""
    pricer = load_pricer(settings)
    alerting_config = load_alerting(settings, settings.source)
    check_digest_channels(settings, alerting_config)
    ch = settings.clickhouse
    client = connect_with_retry(settings)
    price_version = register_price_version(client, pricer.catalog_digest)

    alerting: AlertService | None = None
    digest = settings.digest
    if (alerting_config.budgets or digest.channels) and alerting_config.alerts.enabled:
        job = DigestJob(
            AlertStore(connect(ch.dsn, ch.database)),
            pricer,
            settings.insights,
            digest,
            alerting_config,
        )
        alerting = AlertService(alerting_config, lambda: connect(ch.dsn, ch.database), [job.run])
    else:
        log.info(
            "alerting is off",
            budgets=len(alerting_config.budgets),
            enabled=alerting_config.alerts.enabled,
        )
    observers: list[BatchObserver] = [alerting.observer] if alerting else []

    app = create_app(settings)
    topics = declare_topics(app, settings)
    worker = settings.worker
    pipeline = Pipeline(
        BatchProcessor(
            pricer,
            TimeBounds(
                max_age=timedelta(days=worker.event_max_age_days),
                max_future=timedelta(seconds=worker.event_max_future_s),
            ),
            missing_tags=settings.insights.missing_tags
            if settings.insights.untagged_policy == "dead_letter"
            else None,
        ),
        LedgerWriter(client, price_version),
        KafkaDeadLetters(topics.dead_letters),
        observers=observers,
        retry_max_s=settings.worker.sink_retry_max_s,
        chunk_bytes=settings.worker.chunk_bytes,
        dlq_limit=DlqLimit(
            max_ratio=worker.dlq_max_ratio,
            ratio_window=worker.dlq_ratio_window,
            max_consecutive=worker.dlq_max_consecutive,
        ),
        stop=exit_process,
    )
    declare_agent(app, topics.usage, pipeline, settings)
    outcomes = OutcomeHandler(
        OutcomeStore(connect(ch.dsn, ch.database)),
        KafkaDeadLetters(topics.dead_letters),
        settings.worker.sink_retry_max_s,
    )
    declare_outcome_agent(app, topics.outcomes, outcomes.handle, settings)
    reader = connect(ch.dsn, ch.database, settings={"readonly": 2})
    declare_views(app, reader, alerting)
    if alerting is not None:
        declare_alerting_lifecycle(app, alerting)
    log.info(
        "worker ready",
        broker=settings.kafka.bootstrap_servers,
        topic=settings.kafka.usage_topic,
        clickhouse=ch.dsn,
        price_version=price_version,
        web=f"http://{settings.worker.web_host}:{settings.worker.web_port}",
    )
    return Worker(app, pipeline, alerting)


def declare_alerting_lifecycle(app: faust.App, service: AlertService) -> None:
    """Start alerting now and stop it with the app.

    Started now, not with Faust's tasks: after a restart Faust may wait ~20 s for the group to
    rebalance, and the outbox and periodic evaluation do not depend on Kafka.
    """
    service.start()
    atexit.register(service.stop)

    @app.task
    async def stop_alerting_on_shutdown() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            service.stop()


def run_worker(settings: Settings) -> None:
    """Block running the worker; returns after a clean shutdown on SIGINT or SIGTERM."""
    worker = build_worker(settings)
    announced = announce_worker(settings)
    runner = faust.Worker(
        worker.app, loglevel=settings.log.level, quiet=True, override_logging=False
    )
    try:
        runner.execute_from_commandline()
    except SystemExit:
        pass
    finally:
        worker.pipeline.close()
        if announced is not None:
            announced.unlink(missing_ok=True)
        log.info("worker stopped")


__all__ = ["Worker", "build_worker", "connect_with_retry", "run_worker"]
