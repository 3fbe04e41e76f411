"""The reconciliation HTTP route, for the api part to mount under ``/api/v1``.

``GET /reconcile/variance?since=2026-11-01&until=2026-12-01&by=model`` (``Permission.READ``):
the variance table of ``spendstream reconcile report`` as JSON (amounts as exact decimal
strings). A team-scoped token sees only accounts mapped to its teams. The worker (or the
standalone server) passes the dependencies; this module never imports ``api``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException

from spendstream.auth.http import require
from spendstream.auth.roles import Permission, Principal
from spendstream.moments import bounded
from spendstream.pricing import Pricer
from spendstream.reconcile.ledger_side import AccountMap
from spendstream.reconcile.report import BY_CHOICES, By, variance_table
from spendstream.reconcile.store import read_lines
from spendstream.reconcile.variance import compute_variance, day_range
from spendstream.sinks.access import Reader, jsonable

Caller = Annotated[Principal, Depends(require(Permission.READ))]


def parse_day(text: str | None, name: str, default: datetime) -> datetime:
    """An ISO date or time (UTC when no zone); 400 naming the parameter otherwise."""
    if text is None:
        return default
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise HTTPException(400, f"{name}={text!r}: write an ISO date, e.g. 2026-11-01") from None
    try:
        return bounded(moment, text)
    except ValueError as exc:
        raise HTTPException(400, f"{name}: {exc}") from None


def reconcile_router(
    reader: Callable[[], Reader], pricer: Pricer, accounts: Mapping[str, AccountMap]
) -> APIRouter:
    """``reader`` opens a reader per request (blocking; FastAPI runs the route in a thread)."""
    router = APIRouter(tags=["reconciliation"])

    @router.get("/reconcile/variance", summary="Invoiced vs our ledger, difference explained")
    def variance(
        caller: Caller, since: str | None = None, until: str | None = None, by: str = "model"
    ) -> dict[str, Any]:
        if by not in BY_CHOICES:
            raise HTTPException(400, f"by={by!r}: use one of {', '.join(BY_CHOICES)}")
        now = datetime.now(UTC)
        start, end = day_range(
            parse_day(since, "since", now - timedelta(days=7)), parse_day(until, "until", now)
        )
        source = reader()
        lines = read_lines(source, start, end)
        cells = compute_variance(source, lines, pricer, accounts, start, end, caller)
        group: By = by
        columns, rows, total = variance_table(cells, group, accounts)
        return {
            "since": start.isoformat(),
            "until": end.isoformat(),
            "by": by,
            "sign": "difference = invoiced - ours",
            "coverage_pct": jsonable(total.coverage),
            "rows": [dict(zip(columns, jsonable(row), strict=True)) for row in rows],
        }

    return router
