"""``/api/v1/recommendations``: ranked advice, decisions on it (audited), and the what-if.

- ``GET /api/v1/recommendations?days=30`` (READ; rows of the caller's teams): ``{"since",
  "until", "days", "recommendations": [...]}``, largest monthly saving first, Decimals as exact
  strings. ``include_dismissed=true`` lists dismissed ones too; ``scope=key=value`` filters.
- ``POST /api/v1/recommendations/{rec_id}`` (OPERATE): ``{"state": "accepted" | "dismissed" |
  "open", "reason": "..."}``; the author is the token's name. The recommendation must be one
  the caller sees over the last ``days`` days (body field, default 30).
- ``GET /api/v1/recommendations/log?since=...`` (OPERATE, every team): the decision log.
- ``POST /api/v1/whatif`` (READ): :mod:`spendstream.advice.whatif` over the caller's teams.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from spendstream.advice import store
from spendstream.advice.model import utc_moment
from spendstream.advice.service import Advisor
from spendstream.advice.whatif import WhatIfError, WhatIfRequest, simulate
from spendstream.auth.http import require
from spendstream.auth.roles import Permission, Principal
from spendstream.auth.scope import refuse_foreign_teams, team_condition
from spendstream.insights.base import InsightError, parse_scope
from spendstream.sinks.access import jsonable

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

ReadCaller = Annotated[Principal, Depends(require(Permission.READ))]
OperatorCaller = Annotated[Principal, Depends(require(Permission.OPERATE))]
Days = Annotated[int, Field(ge=1, le=366)]


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["accepted", "dismissed", "open"]
    reason: Annotated[str, Field(max_length=1000)] = ""
    days: Days = 30


def listing(
    advisor: Advisor,
    caller: Principal,
    days: int,
    scope: list[str] | None = None,
    include_dismissed: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The body of ``GET /recommendations`` (also what the CLI prints as JSON)."""
    until = now or datetime.now(UTC)
    team_sql, team_params = team_condition(caller)
    pairs = parse_scope(scope or [])
    refuse_foreign_teams(caller, (value for key, value in pairs if key == "team"))
    recs = advisor.recommendations(
        until,
        days,
        pairs,
        team_sql,
        team_params,
        include_dismissed,
        caller.teams,
    )
    return {
        "since": until - timedelta(days=days),
        "until": until,
        "days": days,
        "recommendations": [rec.as_dict() for rec in recs],
    }


def advice_router(advisor: Advisor, writer: Callable[[], Client]) -> APIRouter:
    """The routes over ``advisor``; decisions are written through ``writer()`` (a writable
    client, kept apart from the read-only query pool)."""
    router = APIRouter(prefix="/api/v1", tags=["recommendations"])
    client = cache(writer)  # one writable client, opened at the first decision

    @router.get("/recommendations")
    def recommendations(
        caller: ReadCaller,
        days: Annotated[int, Query(ge=1, le=366)] = 30,
        scope: Annotated[list[str] | None, Query()] = None,
        include_dismissed: bool = False,
    ) -> dict[str, Any]:
        try:
            return jsonable(listing(advisor, caller, days, scope, include_dismissed))
        except InsightError as exc:
            raise HTTPException(400, str(exc)) from None

    @router.get("/recommendations/log")
    def decision_log(caller: OperatorCaller, since: datetime | None = None) -> dict[str, Any]:
        if caller.teams is not None:
            raise HTTPException(
                403, "the decision log spans every team: use a token without --team"
            )
        try:
            start = utc_moment(since) if since else datetime.now(UTC) - timedelta(days=90)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        columns, rows = store.history(advisor.reader, start)
        return {"columns": columns, "rows": jsonable(rows)}

    @router.post("/recommendations/{rec_id}")
    async def decide(rec_id: str, body: DecisionRequest, caller: OperatorCaller) -> dict[str, Any]:
        def apply() -> store.Decision:
            team_sql, team_params = team_condition(caller)
            now = datetime.now(UTC)
            recs = advisor.recommendations(
                now, body.days, (), team_sql, team_params, True, caller.teams
            )
            rec = next((r for r in recs if r.rec_id == rec_id), None)
            if rec is None:
                raise HTTPException(
                    404, f"no recommendation {rec_id!r} in your teams' last {body.days} days"
                )
            return store.record(client(), rec, body.state, caller.name, body.reason, now)

        done = await run_in_threadpool(apply)
        fields = ("rec_id", "state", "decided_by", "decided_at", "reason")
        return {name: jsonable(getattr(done, name)) for name in fields}

    @router.post("/whatif")
    async def whatif(body: WhatIfRequest, caller: ReadCaller) -> dict[str, Any]:
        # A change scoped to another team: 403, as a filter on it (a zero change would hide it).
        refuse_foreign_teams(caller, (c.scope["team"] for c in body.changes if "team" in c.scope))
        team_sql, team_params = team_condition(caller)
        try:
            result = await run_in_threadpool(
                simulate, advisor.reader, advisor.pricer, body, team_sql, team_params
            )
        except WhatIfError as exc:
            raise HTTPException(400, str(exc)) from None
        return jsonable(result)

    return router
