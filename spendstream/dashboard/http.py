"""API routes the dashboard needs beyond the shared ones: the caller and data freshness."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse

from spendstream.auth.http import require
from spendstream.auth.roles import ROLE_PERMISSIONS, Permission, Principal
from spendstream.auth.scope import team_condition
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


def session_router(reader: Reader) -> APIRouter:
    """``GET /session`` (the caller's name, role, teams, permissions) and ``GET /freshness``
    (the newest event and ingest instants the caller may see: the pages' "data as of")."""
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
        try:
            result = reader.query(FRESHNESS_SQL.format(recent=RECENT, scope=condition), params)
            if not result.rows or not result.rows[0][2]:
                result = reader.query(FRESHNESS_SQL.format(recent="1", scope=condition), params)
        except Exception as exc:
            raise HTTPException(400, f"freshness query failed: {str(exc)[:200]}") from None
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

    return router
