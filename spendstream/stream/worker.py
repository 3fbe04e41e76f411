"""Run the stream worker: ClickHouse set-up, then the Faust worker until SIGINT/SIGTERM."""

from __future__ import annotations

import time

import faust
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from spendstream.alerts import attach
from spendstream.alerts.config import load_alerting
from spendstream.config import Settings
from spendstream.logs import get_logger
from spendstream.sinks.access import announce_worker
from spendstream.sinks.client import connect
from spendstream.sinks.ledger import LedgerWriter, register_price_version
from spendstream.sinks.migrations import migrate
from spendstream.stream.app import create_app, wire_app
from spendstream.stream.pipeline import Pipeline
from spendstream.stream.pricing import Pricer, default_pricer
from spendstream.stream.processor import BatchProcessor

log = get_logger(__name__)


def load_pricer(settings: Settings) -> Pricer:
    """The configured pricer: the shipped catalog plus any ``[pricing]`` overrides."""
    if settings.pricing:
        return Pricer.from_config(settings.pricing, base_dir=settings.base_dir)
    return default_pricer()


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


async def _unwired(letters: object) -> None:  # replaced by wire_app
    raise RuntimeError("dead-letter publisher not wired")


def build_worker(settings: Settings) -> tuple[faust.App, Pipeline]:
    """Validate pricing and budgets, connect and migrate ClickHouse, register the price
    version, wire the Faust app and alerting. Raises ConfigError before touching anything."""
    pricer = load_pricer(settings)
    load_alerting(settings, settings.source)
    ch = settings.clickhouse
    client = connect_with_retry(settings)
    price_version = register_price_version(client, pricer.catalog_digest)
    pipeline = Pipeline(
        BatchProcessor(pricer),
        LedgerWriter(client, price_version),
        _unwired,
        retry_max_s=settings.worker.sink_retry_max_s,
        chunk_bytes=settings.worker.chunk_bytes,
    )
    reader = connect(ch.dsn, ch.database, settings={"readonly": 2})
    app = wire_app(create_app(settings), settings, pipeline, reader)
    log.info(
        "worker ready",
        broker=settings.kafka.bootstrap_servers,
        topic=settings.kafka.usage_topic,
        clickhouse=ch.dsn,
        price_version=price_version,
        web=f"http://{settings.worker.web_host}:{settings.worker.web_port}",
    )
    attach(app, pipeline, settings, settings.source)
    return app, pipeline


def run_worker(settings: Settings) -> None:
    """Block running the worker; returns after a clean shutdown on SIGINT or SIGTERM."""
    app, pipeline = build_worker(settings)
    announced = announce_worker(settings)
    worker = faust.Worker(app, loglevel=settings.log.level, quiet=True, override_logging=False)
    try:
        worker.execute_from_commandline()
    except SystemExit:
        pass
    finally:
        pipeline.close()
        if announced is not None:
            announced.unlink(missing_ok=True)
        log.info("worker stopped")


__all__ = ["build_worker", "connect_with_retry", "load_pricer", "run_worker"]
