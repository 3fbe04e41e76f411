"""``/api/v1/anomalies``: the inbox of anomaly episodes and audited state changes.

- ``GET /api/v1/anomalies?since=30d&state=open`` (READ; the caller's teams only):
  ``{"since", "anomalies": [...]}``, newest first; ``state`` repeatable.
- ``GET /api/v1/anomalies/{episode_id}`` (READ): one episode with its history.
- ``POST /api/v1/anomalies/{episode_id}`` (OPERATE): ``{"state": "acknowledged" | "resolved" |
  "dismissed" | "open", "reason": "..."}``; the author is the token's name, the change is
  kept in ``anomaly_actions``.
- ``POST /api/v1/anomaly-rules/{rule}/silence`` (OPERATE, a rule inside the caller's teams):
  ``{"action": "silence" | "unsilence", "duration": "2h", "reason": "..."}``; the rule's
  notices are recorded as silenced until then (:mod:`spendstream.anomalies.silences`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from spendstream.alerts.silences import SilenceRequest
from spendstream.anomalies.config import AnomalyRule
from spendstream.anomalies.episodes import InboxState
from spendstream.anomalies.inbox import change_state, entries
from spendstream.anomalies.silences import silence_rule
from spendstream.auth.http import require
from spendstream.auth.roles import Permission, Principal
from spendstream.moments import parse_named
from spendstream.sinks.access import Reader, jsonable

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

ReadCaller = Annotated[Principal, Depends(require(Permission.READ))]
OperatorCaller = Annotated[Principal, Depends(require(Permission.OPERATE))]


class StateChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: InboxState
    reason: Annotated[str, Field(max_length=1000)] = ""


class RuleSilence(BaseModel):
    """A silence (``duration`` like ``2h``) or an unsilence; the author is the caller's token."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["silence", "unsilence"] = "silence"
    duration: Annotated[str, Field(max_length=32)] = "1h"
    reason: Annotated[str, Field(max_length=500)] = ""


def since_moment(since: str, now: datetime) -> datetime:
    """``30d`` style (back from now) or an ISO 8601 moment (UTC when it names no zone), within
    the supported range (:mod:`spendstream.moments`); 400 otherwise."""
    try:
        return parse_named(since, "since", now)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


def anomalies_router(
    reader: Reader, writer: Callable[[], Client], rules: Sequence[AnomalyRule] = ()
) -> APIRouter:
    """The inbox over ``reader``; state changes and silences of ``rules`` are written through
    ``writer()`` (a writable client, kept apart from the read-only query pool)."""
    router = APIRouter(prefix="/api/v1", tags=["anomalies"])
    client = cache(writer)

    @router.get("/anomalies", summary="Anomaly episodes (the inbox)")
    def listing(
        caller: ReadCaller,
        since: str = "30d",
        state: Annotated[list[InboxState] | None, Query()] = None,
    ) -> dict[str, Any]:
        start = since_moment(since, datetime.now(UTC))
        found = entries(reader, caller, start, set(state) if state else None)
        return jsonable({"since": start, "anomalies": [e.as_dict() for e in found]})

    @router.get("/anomalies/{episode_id}", summary="One anomaly episode with its history")
    def one(episode_id: str, caller: ReadCaller) -> dict[str, Any]:
        found = entries(reader, caller, datetime.fromtimestamp(0, UTC), episode=episode_id)
        if not found:
            raise HTTPException(404, f"no anomaly episode {episode_id[:64]!r} in your teams")
        return jsonable(found[0].as_dict())

    @router.post("/anomalies/{episode_id}", summary="Change an episode's state (audited)")
    async def decide(episode_id: str, body: StateChange, caller: OperatorCaller) -> dict[str, Any]:
        def apply() -> dict[str, Any]:
            now = datetime.now(UTC)
            done = change_state(reader, client(), caller, episode_id, body.state, body.reason, now)
            return jsonable(done.as_dict())

        return await run_in_threadpool(apply)

    @router.post("/anomaly-rules/{rule}/silence", summary="Silence an anomaly rule (audited)")
    async def silence(rule: str, body: RuleSilence, caller: OperatorCaller) -> dict[str, Any]:
        fields = body.model_dump(exclude={"duration"} if body.action == "unsilence" else set())
        try:
            request = SilenceRequest.model_validate({**fields, "budget": rule})
        except ValueError as exc:
            raise HTTPException(400, str(exc)[:300]) from None
        if request.duration <= timedelta(0):
            raise HTTPException(400, "duration must be positive, e.g. 2h")

        def apply() -> dict[str, Any]:
            done = silence_rule(client(), rules, caller, request, datetime.now(UTC))
            return done.model_dump(mode="json")

        return await run_in_threadpool(apply)

    return router
