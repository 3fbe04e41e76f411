"""``GET /api/v1/explain``: why spend changed between two periods (docs/explain.md).

Query parameters: ``since``/``until`` (default the last 24 h), the baseline as ``vs`` (an offset
into the past, default ``7d``) or ``vs_since``/``vs_until``, and repeatable ``filter=key=value``
as ``/spend`` takes them. A team-scoped token sees its teams only: its figures are restricted
in SQL, and naming another team in a filter is a 403.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response

from spendstream.api.common import json_response, parse_instant, parse_span
from spendstream.api.routes_data import parse_filters
from spendstream.auth.http import require
from spendstream.auth.roles import Permission, Principal
from spendstream.auth.scope import team_condition
from spendstream.durations import parse_duration
from spendstream.explain import Scope, explain, periods
from spendstream.sinks.access import Reader as LedgerReader

Reader = Annotated[Principal, Depends(require(Permission.READ))]


def explain_router(reader: LedgerReader) -> APIRouter:
    """The route over ``reader`` (the API's read-only, limited pool)."""
    router = APIRouter(tags=["explain"])

    @router.get("/explain", summary="Why spend changed: drivers, contributors, one sentence")
    def explain_route(
        caller: Reader,
        since: str = "24h",
        until: str = "now",
        vs: str | None = None,
        vs_since: str | None = None,
        vs_until: str | None = None,
        filter: Annotated[list[str], Query(description="key=value (repeatable)")] = [],  # noqa: B006
    ) -> Response:
        start, end = parse_span(since, until)
        try:
            offset = parse_duration(vs) if vs is not None else None
            period, baseline = periods(
                start,
                end,
                offset,
                parse_instant(vs_since, "vs_since") if vs_since else None,
                parse_instant(vs_until, "vs_until") if vs_until else None,
            )
        except ValueError as exc:  # the offset too long, or the baseline out of range
            raise HTTPException(400, str(exc)) from None
        filters = parse_filters(caller, filter)
        team_sql, team_params = team_condition(caller)
        try:
            answer = explain(reader, Scope(filters, team_sql, team_params), period, baseline)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        # ClickHouse refusals and outages reach the API's one error mapping (api.errors).
        return json_response(answer.to_json())

    return router
