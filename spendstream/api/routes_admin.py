"""Admin routes (``Permission.ADMIN``): tokens and free SQL.

Free SQL must first pass :class:`spendstream.sinks.sqlguard.SqlGuard` (one SELECT/WITH over
allowlisted functions and tables, checked on ClickHouse's own parse: ``readonly`` alone lets
``file()``, ``INTO OUTFILE`` and ``KILL`` through on chDB), then runs on the API's read-only
pool under the ``[api]`` time, result and memory limits. A refusal is a 400 naming what. A
team-scoped admin can not run free SQL (it could read every team). Tokens: nobody creates or
revokes a token with rights beyond its own (:func:`spendstream.auth.tokens.check_grant`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from spendstream.api.answers import bounded_table
from spendstream.api.common import ApiDeps, json_response, run_caller_sql
from spendstream.auth.http import require
from spendstream.auth.roles import Permission, Principal, Role
from spendstream.auth.tokens import NAME_PATTERN, EscalationError, TokenError
from spendstream.moments import after
from spendstream.sinks.sqlguard import SqlRefused

Admin = Annotated[Principal, Depends(require(Permission.ADMIN))]
Scalar = str | int | float | bool | None


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=64)
    role: Role
    teams: list[str] = Field(default_factory=list, max_length=100)
    expires: str | None = Field(default=None, max_length=16, description="e.g. 90d; none: never")


class SqlBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=100_000)
    parameters: dict[str, Scalar | list[Scalar] | list[list[Scalar]]] = Field(default_factory=dict)


def admin_router(deps: ApiDeps) -> APIRouter:
    router = APIRouter(tags=["admin"])

    @router.get("/tokens", summary="Every token (never secrets)")
    def tokens(caller: Admin) -> Response:
        now = datetime.now(UTC)
        shown = [
            r.public(now)
            for r in deps.tokens.all()
            if caller.teams is None or (r.teams and set(r.teams) <= caller.teams)
        ]
        return json_response(shown)

    @router.post("/tokens", summary="Create a token; the secret is in this answer only")
    def create_token(caller: Admin, body: TokenBody) -> Response:
        expires_at = None
        now = datetime.now(UTC)
        if body.expires:
            try:
                expires_at = after(now, body.expires)
            except ValueError as exc:
                raise HTTPException(400, f"expires: {exc}") from None
        try:
            record, secret = deps.tokens.create(
                body.name, body.role, body.teams, expires_at, creator=caller, now=now
            )
        except EscalationError as exc:
            raise HTTPException(403, str(exc)) from None
        except TokenError as exc:
            raise HTTPException(400, str(exc)) from None
        return json_response({**record.public(now), "token": secret}, status=201)

    @router.delete("/tokens/{name_or_id}", summary="Revoke a token by name or id")
    def revoke_token(caller: Admin, name_or_id: str) -> Response:
        if not NAME_PATTERN.match(name_or_id):
            raise HTTPException(400, f"{name_or_id[:80]!r} is not a token name or id")
        try:
            revoked = deps.tokens.revoke(name_or_id, creator=caller)
        except EscalationError as exc:
            raise HTTPException(403, str(exc)) from None
        except TokenError as exc:
            raise HTTPException(404, str(exc)) from None
        for record in revoked:
            deps.authenticator.forget(record.token_id)
        now = datetime.now(UTC)
        return json_response([r.public(now) for r in revoked])

    @router.post("/sql", summary="Free read-only SQL (admins of every team only)")
    def sql(caller: Admin, body: SqlBody) -> Response:
        if caller.teams is not None:
            raise HTTPException(
                403,
                f"token {caller.name!r} is limited to teams; free SQL needs an admin "
                "token of every team (use /spend and /audits instead)",
            )
        parameters: dict[str, Any] = dict(body.parameters)
        if deps.sql_guard is None:
            raise HTTPException(403, "free SQL is disabled: this API has no SQL guard")
        try:
            deps.sql_guard.check(body.query, parameters)
        except SqlRefused as exc:
            raise HTTPException(400, f"refused: {exc}") from None
        # Any other failure is mapped by class (spendstream.api.errors): an outage is a 503.
        # One answer at a time, its values and JSON bounded (spendstream.api.answers).
        return bounded_table(
            lambda: run_caller_sql(deps, body.query, parameters),
            deps.settings.max_result_bytes,
            deps.settings.max_execution_time_s,
        )

    return router
