"""``POST /api/v1/admit``: admission over HTTP for apps that do not use the Python SDK; and
``POST /api/v1/quotas/overrides``: overrides and resets for operators.

Answers from an :class:`~spendstream.producers.admission.AdmissionView` fed by the decisions
topic (the same rule as ``Recorder.admit``). Its local usage is what this worker's
``POST /api/v1/events`` ingested: those events count at once, until a decision's completeness
point passes their offsets; calls recorded any other way count once the ledger has them.
200 when allowed, 429 when denied, with ``Retry-After`` (seconds) and ``RateLimit-Limit`` /
``RateLimit-Remaining`` / ``RateLimit-Reset`` for the deciding quota. Needs a token with
``Permission.ADMIT`` (role ``service``); a team-scoped token may only ask about its own teams.

``GET /api/v1/quotas`` (:func:`quota_status_router`, ``Permission.READ``): each configured quota,
its newest decision per key and the overrides in force.

Overrides need ``Permission.OPERATE`` and a token that sees every team (a quota's scope is not
bound to one team); the author recorded is the token's name, never the request body.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from spendstream.auth.http import require
from spendstream.auth.roles import Permission, Principal
from spendstream.auth.scope import refuse_team_scoped, sees_scope
from spendstream.events import MAX_UNITS, TagKey, TagValue, UnitName, UnitQuantity
from spendstream.producers.admission import AdmissionView
from spendstream.quotas.config import Quotas
from spendstream.quotas.overrides import OverrideRequest
from spendstream.sinks.access import Reader, jsonable


class AdmitRequest(BaseModel):
    """The call about to be made: its model (and provider), estimated tokens, and tags."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    provider: str | None = None
    estimated_tokens: Annotated[int, Field(ge=0, le=10**9)] = 0
    estimated_units: Annotated[dict[UnitName, UnitQuantity], Field(max_length=MAX_UNITS)] = Field(
        default_factory=dict
    )
    tags: Annotated[dict[TagKey, TagValue], Field(max_length=32)] = Field(default_factory=dict)


# Module level: FastAPI resolves the (string) annotations of routes from module globals.
AdmitCaller = Annotated[Principal, Depends(require(Permission.ADMIT))]
ReadCaller = Annotated[Principal, Depends(require(Permission.READ))]
OperatorCaller = Annotated[Principal, Depends(require(Permission.OPERATE))]
Override = Callable[[OverrideRequest], dict[str, object]]


def quota_router(view: AdmissionView, override: Override) -> APIRouter:
    """The admission route over ``view`` (the caller keeps the view's feed running) and the
    override route applying requests through ``override`` (the worker's quota service)."""
    router = APIRouter()

    @router.post("/api/v1/quotas/overrides")
    async def quota_override(body: OverrideRequest, caller: OperatorCaller) -> JSONResponse:
        refuse_team_scoped(caller, "quota overrides need an operator token without --team")
        request = body.model_copy(update={"by": caller.name})
        try:
            done = await run_in_threadpool(override, request)
        except KeyError as exc:
            raise HTTPException(status_code=404, detail=str(exc.args[0])) from None
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        return JSONResponse(done)

    @router.post("/api/v1/admit")
    async def admit(body: AdmitRequest, caller: AdmitCaller) -> JSONResponse:
        team = body.tags.get("team", "")
        if caller.teams is not None and team not in caller.teams:
            raise HTTPException(
                status_code=403,
                detail=f"token {caller.name!r} may only ask about teams "
                f"{sorted(caller.teams)}; set tags.team to one of them",
            )
        decision = view.admit(
            body.model, body.estimated_tokens, body.tags, body.provider, body.estimated_units
        )
        headers: dict[str, str] = {}
        if decision.quota and decision.remaining is not None:
            headers["RateLimit-Remaining"] = str(decision.remaining)
            if decision.limit is not None:
                headers["RateLimit-Limit"] = str(decision.limit)
        if not decision.allowed:
            retry = str(max(1, math.ceil(decision.retry_after)))
            headers["Retry-After"] = headers["RateLimit-Reset"] = retry
        return JSONResponse(
            decision.as_dict(), status_code=200 if decision.allowed else 429, headers=headers
        )

    return router


STATUS_COLUMNS = (
    "quota", "key", "unit", "allowed", "used", "limit", "remaining", "resets_at", "as_of",
    "reason", "override_until",
)  # fmt: skip
IN_FORCE_COLUMNS = ("quota", "key", "kind", "limit", "until", "reason", "created_by", "created_at")
# quota_decisions is replaced per (quota, key): FINAL leaves the newest decision of each key.
DECISIONS_SQL = (
    "SELECT {columns} FROM quota_decisions FINAL WHERE quota IN {{quotas:Array(String)}} "
    "ORDER BY quota, key"
).format(columns=", ".join(f"`{c}`" for c in STATUS_COLUMNS))
# The override in effect for a key is its latest one whose ``until`` is still ahead.
OVERRIDES_SQL = (
    "SELECT {columns} FROM quota_overrides WHERE quota IN {{quotas:Array(String)}} "
    "AND until > now64(3) ORDER BY quota, key, created_at DESC LIMIT 1 BY quota, key"
).format(columns=", ".join(f"`{c}`" for c in IN_FORCE_COLUMNS))


def quota_status_router(reader: Reader, quotas: Quotas) -> APIRouter:
    """``GET /quotas`` (mounted under ``/api/v1``): ``{"quotas": [...], "decisions": {columns,
    rows}, "overrides": {columns, rows}}`` for the quotas the caller may see. A team-scoped
    caller sees a quota only when its scope's ``team`` values all lie within its teams
    (a quota without a team filter spans every team, so it is hidden)."""
    router = APIRouter(tags=["quotas"])

    @router.get("/quotas", summary="Quota status per key and the overrides in force")
    def quota_status(caller: ReadCaller) -> JSONResponse:
        shown = [q for q in quotas.quotas if sees_scope(caller, q.scope_filters)]
        params = {"quotas": [q.name for q in shown]}
        decisions: list[list[object]] = []
        overrides: list[list[object]] = []
        if shown:
            decisions = reader.query(DECISIONS_SQL, params).rows
            overrides = reader.query(OVERRIDES_SQL, params).rows
        body = {
            "quotas": [
                {
                    "quota": q.name,
                    "scope": q.scope,
                    "group_by": q.group_by,
                    "unit": q.unit,
                    "limit": q.amount,
                    "per": q.per,
                    "action": q.action,
                }
                for q in shown
            ],
            "decisions": {"columns": list(STATUS_COLUMNS), "rows": decisions},
            "overrides": {"columns": list(IN_FORCE_COLUMNS), "rows": overrides},
        }
        return JSONResponse(jsonable(body))

    return router
