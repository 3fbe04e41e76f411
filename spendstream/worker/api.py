"""The one wiring of the HTTP API, for the worker and for ``spendstream serve``.

Every route over ClickHouse is mounted by both; the worker adds what only it has
(:class:`WorkerRoutes`: HTTP ingest publishing to Kafka, admission and quota overrides, silences
that wake its dispatcher). Building opens clients and constructs the app; nothing is written
and no thread starts until :meth:`Api.start` (the admin token file, the token snapshot).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from spendstream.advice.http import advice_router
from spendstream.advice.service import Advisor
from spendstream.alerts.config import Alerting
from spendstream.alerts.silences import SilenceRequest, Subjects, apply_silence
from spendstream.anomalies import load_anomalies
from spendstream.anomalies.http import anomalies_router
from spendstream.api import create_api
from spendstream.api.common import ApiDeps
from spendstream.api.guard import BodyLimit
from spendstream.api.server import api_reader, dashboard_mounts, standard_deps
from spendstream.auth.bootstrap import ensure_admin_token
from spendstream.config import Settings
from spendstream.currency.http import rates_router
from spendstream.event_bounds import TimeBounds
from spendstream.ingest.http import ingest_router
from spendstream.ingest.publisher import EventPublisher
from spendstream.insights.http import insights_router
from spendstream.logs import get_logger
from spendstream.notifications.outbox import Outbox
from spendstream.periods import utc_now
from spendstream.pricing import Pricer
from spendstream.producers.admission import AdmissionView
from spendstream.quotas.config import Quotas
from spendstream.quotas.http import quota_router, quota_status_router
from spendstream.quotas.service import QuotaService
from spendstream.reconcile.http import reconcile_router
from spendstream.reconcile.ledger_side import account_maps
from spendstream.sinks.pool import PooledReader
from spendstream.stream import metrics
from spendstream.worker.clients import Clients

log = get_logger(__name__)
INGEST_PATH = "/api/v1/events"
Silence = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class WorkerRoutes:
    """What a running worker adds to the API."""

    publisher: EventPublisher  # POST /api/v1/events
    admission: AdmissionView | None  # with quotas: POST /api/v1/admit
    quotas: QuotaService | None  # with quotas: overrides
    silence: Silence | None  # the alert service's (wakes its dispatcher); None: from the store


@dataclass(frozen=True)
class Api:
    """The application and what it holds open besides the clients it was given."""

    app: FastAPI
    deps: ApiDeps
    readers: tuple[PooledReader, ...]

    def start(self, settings: Settings) -> None:
        """Write the admin token file when configured; then load every token, so tokens stay
        verifiable while ClickHouse is unreachable (``TokenAuthenticator.prime``)."""
        token_file = settings.api.admin_token_file
        if token_file and ensure_admin_token(self.deps.tokens, Path(token_file)):
            log.info("admin token created", path=token_file)
        self.deps.authenticator.prime()

    def close(self) -> None:
        """Close the query pools and the token store's client (after the server stopped)."""
        for reader in self.readers:
            reader.close()
        self.deps.tokens.client.close()


def store_silence(store: Outbox, subjects: Subjects) -> Silence:
    """Silences written straight to the store (no dispatcher in this process to wake)."""

    def silence(body: dict[str, Any]) -> dict[str, Any]:
        request = SilenceRequest.model_validate(body)
        return apply_silence(store, subjects, request, utc_now()).model_dump(mode="json")

    return silence


def build_api(
    settings: Settings,
    alerting: Alerting,
    pricer: Pricer,
    quotas: Quotas,
    clients: Clients,
    bind_host: str,
    worker: WorkerRoutes | None = None,
) -> Api:
    """The API over one read-only query pool (plus the dashboard's); ``worker`` None: the
    standalone server (``spendstream serve``), without HTTP ingest, admission or overrides."""
    reader = api_reader(settings)
    dashboard = dashboard_mounts(settings, alerting)
    silence = worker.silence if worker else None
    root_routers = [
        insights_router(reader, pricer, settings.insights),
        advice_router(Advisor(reader, pricer, settings.insights), clients.open),
        anomalies_router(reader, clients.open, load_anomalies(settings, alerting)),
    ]
    if worker is not None:
        http = settings.ingest.http
        admission = worker.admission
        root_routers.append(
            ingest_router(
                worker.publisher,
                http,
                settings.producer.partition_key_tag,
                admission.note if admission else None,
                TimeBounds.of(
                    settings.worker.event_max_age_days, settings.worker.event_max_future_s
                ),
            )
        )
        if worker.quotas and admission:
            root_routers.append(quota_router(admission, worker.quotas.override))
    deps = standard_deps(
        settings,
        alerting,
        pricer,
        silence=silence
        or store_silence(
            Outbox(clients.open()), Subjects.of(alerting, [q.name for q in quotas.quotas])
        ),
        metrics=metrics.REGISTRY if worker else None,
        routers=[
            reconcile_router(lambda: reader, pricer, account_maps(settings.reconcile)),
            quota_status_router(reader, quotas),
            rates_router(reader, settings.currency, clients.open),
            *dashboard["routers"],
        ],
        root_routers=root_routers,
        body_limits={
            INGEST_PATH: BodyLimit(
                settings.ingest.http.max_body_bytes, "ingest.http.max_body_bytes"
            )
        }
        if worker
        else None,
        reader=reader,
        pages=dashboard["pages"],
        bind_host=bind_host,
    )
    return Api(create_api(deps), deps, (reader, dashboard["reader"]))


__all__ = ["INGEST_PATH", "Api", "WorkerRoutes", "build_api", "store_silence"]
