"""API routes the dashboard needs beyond the shared ones: the caller, data freshness and
budget burn-downs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse

from spendstream.alerts.config import BudgetConfig
from spendstream.auth.http import require
from spendstream.auth.roles import ROLE_PERMISSIONS, Permission, Principal
from spendstream.auth.scope import sees_scope, team_condition
from spendstream.config import CurrencySettings
from spendstream.dashboard.burndown import burndown
from spendstream.sinks.access import Reader, jsonable

ReadCaller = Annotated[Principal, Depends(require(Permission.READ))]

# max() over the ledger needs no FINAL: a replaced row has the same event and ingest times.
# First only the newest day of the ledger (the unfiltered max(event_time) comes from the parts'
# min/max indexes, not a scan); the whole ledger only when the caller's teams have nothing there.
RECENT = "event_time >= (SELECT max(event_time) FROM ledger) - INTERVAL 1 DAY"
FRESHNESS_SQL = (
    "SELECT max(event_time) AS last_event, max(ingested_at) AS last_ingested, count() AS rows "
    "FROM ledger WHERE {recent} AND ({scope})"
)


def dashboard_api_router(
    reader: Reader, budgets: Sequence[BudgetConfig], currency: CurrencySettings | None = None
) -> APIRouter:
    """``GET /session`` (the caller's name, role, teams, permissions), ``GET /freshness``
    (the newest event and ingest instants the caller may see: the pages' "data as of") and
    ``GET /budgets/{name}/burndown`` (cumulative spend through the current period)."""
    router = APIRouter(tags=["dashboard"])

    @router.get("/session", summary="The caller: name, role, teams and permissions")
    def session(caller: ReadCaller) -> JSONResponse:
        return JSONResponse(
            {
                "name": caller.name,
                "role": str(caller.role),
                "teams": None if caller.teams is None else sorted(caller.teams),
                "permissions": sorted(str(p) for p in ROLE_PERMISSIONS[caller.role]),
            }
        )

    @router.get("/freshness", summary="Newest event and ingest time the caller may see")
    def freshness(caller: ReadCaller) -> JSONResponse:
        condition, params = team_condition(caller)
        result = reader.query(FRESHNESS_SQL.format(recent=RECENT, scope=condition), params)
        if not result.rows or not result.rows[0][2]:
            result = reader.query(FRESHNESS_SQL.format(recent="1", scope=condition), params)
        row = result.rows[0] if result.rows else [None, None, 0]
        empty = not row[2]
        return JSONResponse(
            jsonable(
                {
                    "last_event": None if empty else row[0],
                    "last_ingested": None if empty else row[1],
                    "rows": row[2],
                }
            )
        )

    @router.get("/budgets/{name}/burndown", summary="A budget's cumulative spend this period")
    def budget_burndown(caller: ReadCaller, name: str) -> JSONResponse:
        budget = next((b for b in budgets if b.name == name), None)
        if budget is None or not sees_scope(caller, budget.scope_filters):
            shown = ", ".join(b.name for b in budgets if sees_scope(caller, b.scope_filters))
            raise HTTPException(404, f"no budget {name[:80]!r} you may see (yours: {shown})")
        condition, params = team_condition(caller)
        answer = burndown(reader, budget, datetime.now(UTC), condition, params, currency)
        return JSONResponse(jsonable(answer))

    return router
