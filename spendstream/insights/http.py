"""``GET /api/v1/insights/{name}``: an insight as JSON, scoped to the caller's teams.

Query parameters: ``since`` and ``until`` (ISO 8601; ``until`` defaults to now) and repeatable
``scope=key=value``. The body is ``{"insight", "note", "since", "until", "columns", "rows"}``
with Decimals as exact strings. ``GET /api/v1/insights`` lists the names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query

from spendstream.auth.http import require
from spendstream.auth.roles import Permission, Principal
from spendstream.auth.scope import refuse_foreign_teams, team_condition
from spendstream.config import InsightsSettings
from spendstream.insights.base import Context, Window, parse_scope
from spendstream.insights.registry import INSIGHTS, run_insight
from spendstream.pricing import Pricer
from spendstream.sinks.access import Reader, jsonable

# The caller of every route: any principal with READ (teams restrict the rows it sees).
ReadCaller = Annotated[Principal, Depends(require(Permission.READ))]


def insights_router(reader: Reader, pricer: Pricer, settings: InsightsSettings) -> APIRouter:
    """The insights routes over ``reader`` (list prices from ``pricer``)."""
    router = APIRouter(prefix="/api/v1/insights", tags=["insights"])

    @router.get("")
    def list_insights(
        caller: ReadCaller,
    ) -> dict[str, Any]:
        return {"insights": {name: item.description for name, item in INSIGHTS.items()}}

    @router.get("/{name}")
    def insight(
        name: str,
        caller: ReadCaller,
        since: datetime,
        until: datetime | None = None,
        scope: Annotated[list[str] | None, Query()] = None,
    ) -> dict[str, Any]:
        if name not in INSIGHTS:
            raise HTTPException(404, f"no insight {name!r}; choose from {', '.join(INSIGHTS)}")
        team_sql, team_params = team_condition(caller)
        # InsightError is an InputError: answered 400 by spendstream.api.errors.
        pairs = parse_scope(scope or [])
        refuse_foreign_teams(caller, (value for key, value in pairs if key == "team"))
        window = Window(_utc(since), _utc(until or datetime.now(UTC)), pairs, team_sql, team_params)
        result = run_insight(name, Context(reader, pricer, settings, window))
        return {
            "insight": result.name,
            "note": result.note,
            "since": window.since.isoformat(),
            "until": window.until.isoformat(),
            "columns": result.columns,
            "rows": jsonable(result.rows),
        }

    return router


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
