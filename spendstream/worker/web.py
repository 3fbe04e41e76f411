"""The worker's HTTP views (Faust's web server): health, metrics, read-only SQL, silences."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import faust
from clickhouse_connect.driver.client import Client
from faust.web import Request, Response, View
from prometheus_client import generate_latest
from pydantic import ValidationError

from spendstream.alerts.service import AlertService
from spendstream.quotas.overrides import OverrideRequest
from spendstream.quotas.service import QuotaService
from spendstream.sinks.access import jsonable
from spendstream.stream import metrics


def declare_views(
    app: faust.App, reader: Client, alerting: AlertService | None, quotas: QuotaService | None
) -> None:
    """Declare the web pages on ``app``; ``/alerts/silences`` only when alerting runs here,
    ``/quotas/overrides`` only when quotas do."""
    read_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sql")

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(generate_latest(metrics.REGISTRY), content_type="text/plain")

    @app.page("/healthz")
    class HealthView(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/sql")
    class SqlView(View):
        """Read-only SQL over the worker's ClickHouse (the only way in while chDB is open)."""

        async def post(self, request: Request) -> Response:
            body = await request.json()
            query = str(body.get("query", ""))
            parameters = body.get("parameters") or {}
            loop = asyncio.get_running_loop()
            try:
                result = await loop.run_in_executor(
                    read_executor, lambda: reader.query(query, parameters=parameters)
                )
            except Exception as exc:
                return self.json({"error": str(exc)}, status=400)
            payload = {
                "columns": list(result.column_names),
                "rows": [jsonable(list(row)) for row in result.result_rows],
            }
            return self.bytes(json.dumps(payload).encode(), content_type="application/json")

    if quotas is not None:
        declare_quota_views(app, quotas)
    if alerting is None:
        return
    service = alerting
    web_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alerts-web")

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


def declare_quota_views(app: faust.App, quotas: QuotaService) -> None:
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quotas-web")

    @app.page("/quotas/overrides")
    class OverrideView(View):
        async def post(self, request: Request) -> Response:
            body = await request.json()
            loop = asyncio.get_running_loop()
            try:
                parsed = OverrideRequest.model_validate(body)
                done = await loop.run_in_executor(executor, quotas.override, parsed)
            except (ValidationError, KeyError, ValueError) as exc:
                return self.json({"error": str(exc)}, status=400)
            return self.json(done)
