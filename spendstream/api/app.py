"""The FastAPI application factory."""

from __future__ import annotations

import ipaddress

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, generate_latest

from spendstream.api.common import ApiDeps
from spendstream.api.errors import install_error_mapping
from spendstream.api.guard import RequestGuard
from spendstream.api.routes_admin import admin_router
from spendstream.api.routes_agents import REVENUE_PATH, agents_router, revenue_store_on
from spendstream.api.routes_alerts import alerts_router
from spendstream.api.routes_data import data_router
from spendstream.api.routes_explain import explain_router
from spendstream.sinks.access import API_PREFIX


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


MAX_PROBLEMS_SHOWN = 5


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
    ]
    # A union over a long list fails once per member and item: name the first few, count the rest.
    shown = problems[:MAX_PROBLEMS_SHOWN]
    if len(problems) > len(shown):
        shown.append(f"and {len(problems) - len(shown)} more problems of the same request")
    return JSONResponse({"detail": "; ".join(shown) or "invalid request"}, status_code=400)


def create_api(deps: ApiDeps) -> FastAPI:
    """The application: ``/healthz``, ``/metrics`` and ``/api/v1/...`` (OpenAPI at
    ``/api/v1/openapi.json``), behind the request guard."""
    app = FastAPI(
        title="spendstream",
        version="1",
        # Served below, behind a token like every route but /healthz; no docs UI (it would
        # load scripts from a CDN).
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.authenticator = deps.authenticator
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(
        RequestGuard,
        max_body_bytes=deps.settings.max_body_bytes,
        path_limits=deps.body_limits,
        allowed_hosts=deps.allowed_hosts,
        path_types={REVENUE_PATH: frozenset({"text/csv"})},
    )
    install_error_mapping(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        mode = deps.settings.metrics
        client = request.client.host if request.client else ""
        if mode == "token" or (mode == "loopback" and not is_loopback(client)):
            deps.authenticator.authenticate(request)
        registry = deps.metrics or CollectorRegistry()
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    @app.get(f"{API_PREFIX}/openapi.json", include_in_schema=False)
    def openapi(request: Request) -> JSONResponse:
        deps.authenticator.authenticate(request)  # any valid token
        return JSONResponse(app.openapi())

    for router in (
        data_router(deps),
        alerts_router(deps),
        admin_router(deps),
        explain_router(deps.reader),
        agents_router(deps.reader, revenue_store_on(deps.tokens)),
        *deps.routers,
    ):
        app.include_router(router, prefix=API_PREFIX)
    for router in (*deps.root_routers, *deps.pages):
        app.include_router(router)
    return app
