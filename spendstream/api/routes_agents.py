"""Runs, sessions, customers and margin (docs/agents.md), read from their rollups.

``GET /runs`` (per agent: cost per run p50/p95/max, steps per run, model vs tool share),
``/runs/top``, ``/runs/{run_id}`` (the waterfall), ``/sessions``, ``/customers`` (per customer,
optionally per feature and per day/week/month), ``/customers/margin`` and ``POST /revenue``
(JSON rows or ``text/csv``). Reads are team-scoped in SQL. Margin sets revenue against every
team's cost, so it needs a token of every team; importing revenue needs ``admin``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from spendstream.api.common import json_response, parse_span, table_response
from spendstream.auth.http import require
from spendstream.auth.roles import Permission, Principal
from spendstream.auth.scope import team_condition
from spendstream.auth.tokens import TokenStore
from spendstream.jsonbody import JsonBodyError, decode_json
from spendstream.sinks.access import API_PREFIX
from spendstream.sinks.access import Reader as LedgerReader
from spendstream.sinks.agent_views import (
    margins,
    run_steps,
    runs_by_agent,
    sessions,
    spend_by_customer,
    top_runs,
)
from spendstream.sinks.errors import storage_errors
from spendstream.sinks.revenue import Revenue, parse_revenue_csv, revenue_rows, store_revenue

Reader = Annotated[Principal, Depends(require(Permission.READ))]
Admin = Annotated[Principal, Depends(require(Permission.ADMIN))]
StoreRevenue = Callable[[list[Revenue]], int]
# The one route with a body that is not JSON (the request guard lets text/csv through here).
REVENUE_ROUTE = "/revenue"
REVENUE_PATH = f"{API_PREFIX}{REVENUE_ROUTE}"


def revenue_store_on(tokens: TokenStore) -> StoreRevenue:
    """Revenue written through the API's one writable client (the token store's, under its
    lock): the query pool is read-only."""

    def store(rows: list[Revenue]) -> int:
        with tokens.lock, storage_errors():
            return store_revenue(tokens.client, rows)

    return store


def agents_router(reader: LedgerReader, store: StoreRevenue | None = None) -> APIRouter:
    """The routes over ``reader`` (read-only pool); ``store`` writes revenue (None: refused)."""
    router = APIRouter(tags=["agents"])

    @router.get("/runs", summary="Cost and steps per run, per agent")
    def runs(caller: Reader, since: str = "7d", until: str = "now") -> Response:
        start, end = parse_span(since, until)
        result = runs_by_agent(reader, start, end, team_condition(caller))
        return table_response(result, since=start, until=end)

    @router.get("/runs/top", summary="The most expensive runs")
    def runs_top(
        caller: Reader,
        since: str = "7d",
        until: str = "now",
        limit: int = 20,
        agent: str | None = None,
        customer: str | None = None,
    ) -> Response:
        if not 1 <= limit <= 1_000:
            raise HTTPException(400, "limit: between 1 and 1000")
        start, end = parse_span(since, until)
        result = top_runs(reader, start, end, team_condition(caller), limit, agent, customer)
        return table_response(result, since=start, until=end)

    @router.get("/runs/{run_id}", summary="One run step by step (the waterfall)")
    def run_detail(caller: Reader, run_id: str) -> Response:
        result = run_steps(reader, run_id, team_condition(caller))
        if not result.rows:
            raise HTTPException(404, f"no run {run_id!r} visible to this token")
        return table_response(result, run_id=run_id)

    @router.get("/sessions", summary="Cost per session (conversation)")
    def session_list(
        caller: Reader, since: str = "7d", until: str = "now", limit: int = 50
    ) -> Response:
        if not 1 <= limit <= 10_000:
            raise HTTPException(400, "limit: between 1 and 10000")
        start, end = parse_span(since, until)
        result = sessions(reader, start, end, team_condition(caller), limit)
        return table_response(result, since=start, until=end)

    @router.get("/customers", summary="Cost per customer (per feature, trend)")
    def customers(
        caller: Reader,
        since: str = "30d",
        until: str = "now",
        by_feature: bool = False,
        granularity: str = "none",
    ) -> Response:
        start, end = parse_span(since, until)
        try:
            result = spend_by_customer(
                reader, start, end, team_condition(caller), by_feature, granularity
            )
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return table_response(result, since=start, until=end)

    @router.get("/customers/margin", summary="Gross margin per customer and revenue period")
    def customer_margin(caller: Reader, since: str = "90d", until: str = "now") -> Response:
        if caller.teams is not None:
            raise HTTPException(
                403, "margin sets revenue against every team's cost: it needs a token of every team"
            )
        start, end = parse_span(since, until)
        found = [m.as_dict() for m in margins(reader, start.date(), end.date())]
        return json_response({"margins": found, "at_loss": [m for m in found if m["at_loss"]]})

    @router.post(REVENUE_ROUTE, summary="Import revenue per customer and period (JSON or CSV)")
    async def revenue(caller: Admin, request: Request) -> Response:
        if store is None:
            raise HTTPException(503, "revenue import is not available on this server")
        body = await request.body()
        try:
            if request.headers.get("content-type", "").startswith("text/csv"):
                rows = parse_revenue_csv(body.decode("utf-8"))
            else:  # whatever the JSON type says (NDJSON too): the guard's bounds, not json.loads
                items = decode_json(body)
                if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                    raise HTTPException(400, "expected a JSON array of revenue objects")
                rows = revenue_rows(items)
        except UnicodeDecodeError as exc:
            raise HTTPException(400, f"not readable: {exc}") from None
        except JsonBodyError as exc:
            raise HTTPException(400, str(exc)) from None
        return json_response({"stored": store(rows)})

    return router


__all__ = ["agents_router"]
