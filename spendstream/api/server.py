"""Serving the API: uvicorn in a thread of its own (its own event loop, so API load never
stalls the Faust consumer's loop), and the standard set of dependencies built from settings."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict

import uvicorn
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry

from spendstream.alerts.config import Alerting
from spendstream.api.common import ApiDeps
from spendstream.api.guard import BodyLimit
from spendstream.api.readers import readonly_factory
from spendstream.auth.authenticator import TokenAuthenticator
from spendstream.auth.tokens import TokenStore
from spendstream.config import ConfigError, Settings
from spendstream.config.network import allowed_host_names
from spendstream.dashboard.http import dashboard_api_router
from spendstream.dashboard.pages import dashboard_router
from spendstream.pricing.rating import Pricer
from spendstream.sinks.access import Reader
from spendstream.sinks.client import connect
from spendstream.sinks.pool import PooledReader
from spendstream.sinks.sqlguard import SqlGuard, reader_parser


def standard_deps(
    settings: Settings,
    alerting: Alerting,
    pricer: Pricer,
    silence: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    metrics: CollectorRegistry | None = None,
    routers: Sequence[APIRouter] = (),
    root_routers: Sequence[APIRouter] = (),
    body_limits: Mapping[str, BodyLimit] | None = None,
    reader: Reader | None = None,
    pages: Sequence[APIRouter] = (),
    bind_host: str | None = None,
) -> ApiDeps:
    """Dependencies over the configured ClickHouse: a read-only limited pool for queries
    (``reader``, default :func:`api_reader`) and a separate writable client for tokens.
    ``bind_host`` (default ``worker.web_host``) is one of the Host names answered."""
    ch, api = settings.clickhouse, settings.api
    tokens = TokenStore(connect(ch.dsn, ch.database))
    reader = reader or api_reader(settings)
    return ApiDeps(
        settings=api,
        reader=reader,
        tokens=tokens,
        authenticator=TokenAuthenticator(
            tokens, api.auth_cache_s, api.max_auth_failures, api.auth_failure_window_s
        ),
        alerting=alerting,
        pricer=pricer,
        silence=silence,
        metrics=metrics,
        routers=tuple(routers),
        root_routers=tuple(root_routers),
        body_limits=dict(body_limits or {}),
        pages=tuple(pages),
        allowed_hosts=allowed_host_names(api.allowed_hosts, bind_host or settings.worker.web_host),
        sql_guard=SqlGuard(reader_parser(reader), ch.database),
    )


def api_reader(settings: Settings) -> PooledReader:
    """The read-only, limited pool the API's queries run on (shareable with mounted routers)."""
    return PooledReader(readonly_factory(settings))


class DashboardMounts(TypedDict):
    routers: Sequence[APIRouter]
    pages: Sequence[APIRouter]
    reader: PooledReader  # the routes' own pool: its owner closes it after the server stops


def dashboard_mounts(settings: Settings, alerting: Alerting) -> DashboardMounts:
    """``standard_deps`` keyword arguments mounting the dashboard: its pages at ``/`` and its
    API routes (over a two-client read-only pool of their own)."""
    reader = PooledReader(readonly_factory(settings), size=2)
    return {
        "routers": [dashboard_api_router(reader, alerting.budgets, alerting.currency)],
        "pages": [dashboard_router()],
        "reader": reader,
    }


def server_config(
    app: FastAPI, host: str, port: int, trusted_proxies: Sequence[str] = ()
) -> uvicorn.Config:
    """How uvicorn serves the API. ``X-Forwarded-For``/``-Proto`` are believed only from
    ``trusted_proxies`` (``[api] trusted_proxies``; uvicorn's own default trusts 127.0.0.1, so
    any local client could pick the address its failed authentications count against)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http="h11",  # the framing checks in spendstream.api.framing are written against it
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies) or "",
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=2,
    )


class ApiServer:
    """uvicorn serving ``app`` on ``host:port`` in a daemon thread."""

    def __init__(
        self, app: FastAPI, host: str, port: int, trusted_proxies: Sequence[str] = ()
    ) -> None:
        self.server = uvicorn.Server(server_config(app, host, port, trusted_proxies))
        self.thread = threading.Thread(target=self._run, name="api", daemon=True)
        self.url = f"http://{host}:{port}"

    def _run(self) -> None:
        # uvicorn exits when it cannot bind; start() reports it.
        with contextlib.suppress(SystemExit):
            self.server.run()

    def start(self, timeout_s: float = 15.0) -> ApiServer:
        """Start serving; raises ConfigError when the server did not come up (port taken)."""
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(
                    f"the API could not listen on {self.url}: is the port in use? choose "
                    "another with worker.web_port (SPENDSTREAM_WORKER__WEB_PORT)"
                )
            time.sleep(0.02)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)
