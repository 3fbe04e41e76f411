"""Spend, audits and prices: read routes (``Permission.READ``), team-scoped in their SQL."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response

from spendstream.api.common import (
    ApiDeps,
    json_response,
    parse_instant,
    parse_span,
    run_query,
    table_response,
)
from spendstream.auth.http import require
from spendstream.auth.roles import Permission, Principal
from spendstream.auth.scope import refuse_foreign_teams, team_condition
from spendstream.currency.report import spend_in_currency
from spendstream.currency.store import currency_table
from spendstream.pricing.catalog import PricingError
from spendstream.pricing.listing import price_list
from spendstream.sinks.access import QueryResult
from spendstream.sinks.audits import AUDITS, DEFAULT_REQUIRED_TAGS
from spendstream.sinks.queries import (
    TAG_NAME,
    report_columns,
    spend_report_sql,
    unpriced_report_sql,
)

Reader = Annotated[Principal, Depends(require(Permission.READ))]


def parse_filters(caller: Principal, items: list[str]) -> dict[str, list[str]]:
    """``key=value`` items (a repeated key means any of its values); a team-scoped caller may
    only name its own teams."""
    filters: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise HTTPException(400, f"filter {item!r}: write key=value, e.g. filter=team=search")
        filters.setdefault(key.strip(), []).append(value)
    refuse_foreign_teams(caller, filters.get("team", []))
    return filters


def data_router(deps: ApiDeps) -> APIRouter:
    router = APIRouter(tags=["data"])

    @router.get("/spend", summary="Spend grouped by tags over a period")
    def spend(
        caller: Reader,
        by: Annotated[list[str], Query(description="group by tag (repeatable)")] = ["team"],  # noqa: B006
        filter: Annotated[list[str], Query(description="key=value (repeatable)")] = [],  # noqa: B006
        since: str = "30d",
        until: str = "now",
        granularity: str = "none",
        limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
        unpriced: bool = False,
        currency: Annotated[
            str | None, Query(description="also in this currency (ISO code), per day's rate")
        ] = None,
    ) -> Response:
        start, end = parse_span(since, until)
        filters = parse_filters(caller, filter)
        scope = team_condition(caller)
        probe = limit + 1  # one row more than asked says the answer is cut (`truncated`)
        if currency and currency.upper() != "USD" and not unpriced:
            table = currency_table(deps.reader, deps.alerting.currency, currency)
            result = spend_in_currency(
                deps.reader, table, by, start, end, probe, filters, granularity, scope
            )
        else:
            try:
                if unpriced:
                    sql, params = unpriced_report_sql(start, end, scope)
                    columns = None
                else:
                    sql, params = spend_report_sql(
                        by, start, end, probe, filters, granularity, scope
                    )
                    columns = report_columns(by, granularity)
            except ValueError as exc:
                raise HTTPException(400, str(exc)) from None
            result = run_query(deps, sql, params)
            if columns is not None:
                result = QueryResult(columns, result.rows)
        truncated = not unpriced and len(result.rows) > limit
        result = QueryResult(result.columns, result.rows[:limit]) if truncated else result
        return table_response(result, since=start, until=end, truncated=truncated, limit=limit)

    @router.get("/audits", summary="The named audit queries")
    def audits(caller: Reader) -> Response:
        return json_response(
            [{"name": q.name, "description": q.description} for q in AUDITS.values()]
        )

    @router.get("/audits/{name}", summary="Run a named audit over a period")
    def audit(
        caller: Reader,
        name: str,
        since: str = "7d",
        until: str = "now",
        require: Annotated[list[str], Query()] = list(DEFAULT_REQUIRED_TAGS),  # noqa: B006
    ) -> Response:
        query = AUDITS.get(name)
        if query is None:
            raise HTTPException(404, f"no audit {name[:80]!r}; choose from {', '.join(AUDITS)}")
        bad = [tag for tag in require if not TAG_NAME.match(tag)]
        if bad:
            raise HTTPException(400, f"require={bad[0][:80]!r} is not a tag name")
        start, end = parse_span(since, until)
        condition, scope_params = team_condition(caller)
        params = {**query.parameters(start, end, require), **scope_params}
        result = run_query(deps, query.scoped(condition, require), params)
        return table_response(result, audit=name, since=start, until=end)

    @router.get("/prices", summary="The price catalog rows in force")
    def prices(caller: Reader, provider: str | None = None, at: str = "now") -> Response:
        try:
            lines = price_list(deps.pricer, provider, parse_instant(at, "at"))
        except PricingError as exc:
            raise HTTPException(400, str(exc)) from None
        return json_response([asdict(line) for line in lines])

    @router.get("/prices/overrides", summary="Negotiated price overrides in force")
    def overrides(caller: Reader) -> Response:
        now = datetime.now(UTC)
        in_force = [
            o.model_dump(mode="json")
            for o in deps.pricer.overrides
            if (o.effective_from is None or o.effective_from <= now)
            and (o.effective_until is None or now < o.effective_until)
            and ("team" not in o.tags or caller.sees_team(o.tags["team"]))
        ]
        return json_response(in_force)

    return router
