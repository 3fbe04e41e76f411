"""Budgets, alerts and silences. Reads need ``READ``; silences need ``OPERATE``.

A team-scoped caller sees a budget only when the budget's scope lies inside its teams (its
``team`` filter lists only those teams, without globs); alerts follow their budgets.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from spendstream.alerts.config import BudgetConfig
from spendstream.alerts.status import alert_history_sql, budget_status
from spendstream.api.common import ApiDeps, json_response, parse_instant, run_query, table_response
from spendstream.auth.http import require
from spendstream.auth.roles import Permission, Principal
from spendstream.auth.scope import sees_scope
from spendstream.matching import scope_text
from spendstream.periods import utc_now

Reader = Annotated[Principal, Depends(require(Permission.READ))]
Operator = Annotated[Principal, Depends(require(Permission.OPERATE))]


def visible(caller: Principal, budget: BudgetConfig) -> bool:
    return sees_scope(caller, budget.scope_filters)


class SilenceBody(BaseModel):
    """A silence (``duration`` like ``2h``) or an unsilence; the author is the caller's token."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["silence", "unsilence"] = "silence"
    budget: str = Field(max_length=200)
    duration: str = Field(default="1h", max_length=32)
    reason: str = Field(default="", max_length=500)


def alerts_router(deps: ApiDeps) -> APIRouter:
    router = APIRouter(tags=["budgets and alerts"])
    alerting = deps.alerting

    def budget_for(caller: Principal, name: str) -> BudgetConfig:
        for budget in alerting.budgets:
            if budget.name == name:
                if not visible(caller, budget):
                    raise HTTPException(
                        403,
                        f"token {caller.name!r} may not see budget {name!r} (outside its "
                        "teams); ask for a token of the budget's team",
                    )
                return budget
        # 404 naming what exists, as every unknown named thing (an audit, a token, an insight).
        known = ", ".join(b.name for b in alerting.budgets if visible(caller, b)) or "none"
        raise HTTPException(
            404, f"no budget named {name[:80]!r} (budgets: {known}; GET /api/v1/budgets lists them)"
        )

    @router.get("/budgets", summary="The configured budgets")
    def budgets(caller: Reader) -> Response:
        return json_response(
            [
                {
                    "budget": b.name,
                    "scope": scope_text(b.scope_filters),
                    "period": b.period,
                    "timezone": b.timezone,
                    "limit": b.limit,
                    "currency": b.currency or "USD",
                    "fiscal_year_start": b.fiscal_year_start,
                    "rollover_cap": b.rollover_cap,
                    "thresholds": b.thresholds,
                    "owner": b.owner,
                }
                for b in alerting.budgets
                if visible(caller, b)
            ]
        )

    @router.get("/budgets/status", summary="Spend vs limit in each budget's current period")
    def status(caller: Reader) -> Response:
        shown = [b for b in alerting.budgets if visible(caller, b)]
        now = utc_now()
        return table_response(budget_status(deps.reader, alerting, shown, now), at=now)

    @router.get("/alerts", summary="Alert history with deliveries")
    def alerts(caller: Reader, since: str = "7d", budget: str | None = None) -> Response:
        names = [b.name for b in alerting.budgets if visible(caller, b)]
        if budget is not None:
            names = [budget_for(caller, budget).name]
        scoped = names if (caller.teams is not None or budget is not None) else None
        sql, params = alert_history_sql(parse_instant(since, "since"), scoped)
        return table_response(run_query(deps, sql, params))

    @router.post(
        "/silences", summary="Silence or unsilence a budget, quota or subject (author: the token)"
    )
    async def silence(caller: Operator, body: SilenceBody) -> Response:
        if deps.silence is None:
            raise HTTPException(409, "silences need alerting: configure [[budgets]] and [alerts]")
        if caller.teams is not None or any(b.name == body.budget for b in alerting.budgets):
            # A team's token silences its budgets only: a quota's or a run's scope is not
            # judged against its teams here (404/403 naming the budgets it sees).
            budget_for(caller, body.budget)
        request: dict[str, Any] = {**body.model_dump(), "by": caller.name}
        if body.action == "unsilence":
            request.pop("duration")
        apply = deps.silence
        try:
            done = await run_in_threadpool(apply, request)
        except KeyError as exc:  # no subject of any kind by that name: what exists
            raise HTTPException(404, str(exc.args[0])[:600]) from None
        except ValueError as exc:
            raise HTTPException(400, str(exc)[:300]) from None
        return json_response(done)

    return router
