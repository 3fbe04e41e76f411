"""``POST /api/v1/rates`` (import a CSV of daily rates; ``Permission.OPERATE``, a token that sees
every team: rates apply to all) and ``GET /api/v1/rates?currency=EUR`` (``Permission.READ``);
``GET /api/v1/currencies``: ``[currency] display`` and the codes with rates (the dashboard's
currency choice).

The import is all or nothing: a file with one bad line stores nothing and the 400 lists every
bad line with its fix. The author recorded is the token's name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from spendstream.auth.http import require
from spendstream.auth.roles import Permission, Principal
from spendstream.auth.scope import refuse_team_scoped
from spendstream.config import CurrencySettings
from spendstream.currency.rates import RateFileError, check_currency, parse_rates_csv
from spendstream.currency.store import currencies_with_rates, store_rates, stored_rates
from spendstream.sinks.access import Reader

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client


class RatesImport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    csv: str = Field(min_length=1, max_length=4_000_000, description="date,currency,rate lines")
    source: str = Field(default="api", max_length=200, description="e.g. the file's name")


OperatorCaller = Annotated[Principal, Depends(require(Permission.OPERATE))]
ReadCaller = Annotated[Principal, Depends(require(Permission.READ))]


def rates_router(
    reader: Reader, settings: CurrencySettings, writer: Callable[[], Client]
) -> APIRouter:
    """The rates routes over ``reader`` (reads) and a ClickHouse client from ``writer``."""
    router = APIRouter(tags=["currency"])

    @router.post("/rates", summary="Import daily exchange rates (CSV: date,currency,rate)")
    async def import_rates(body: RatesImport, caller: OperatorCaller) -> JSONResponse:
        why = "exchange rates apply to every team: use an operator token without --team"
        refuse_team_scoped(caller, why)
        try:
            rates = parse_rates_csv(body.csv, body.source)
        except RateFileError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        summary = await run_in_threadpool(
            lambda: store_rates(writer(), rates, body.source, caller.name)
        )
        return JSONResponse(summary.as_dict())

    @router.get("/rates", summary="The rates of one currency (imported, or its fixed rate)")
    def rates(
        caller: ReadCaller, currency: Annotated[str, Query(min_length=3, max_length=3)]
    ) -> JSONResponse:
        try:
            code = check_currency(currency.upper())
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        fixed = settings.fixed_rates.get(code)
        rows = [
            [r.day.isoformat(), f"{r.per_usd.normalize():f}"] for r in stored_rates(reader, code)
        ]
        return JSONResponse(
            {
                "currency": code,
                "fixed_rate": None if fixed is None else f"{fixed.normalize():f}",
                "max_rate_age_days": settings.max_rate_age_days,
                "columns": ["day", "rate"],
                "rows": rows,
            }
        )

    @router.get("/currencies", summary="The display currency and the currencies with rates")
    def currencies(caller: ReadCaller) -> JSONResponse:
        listed = currencies_with_rates(reader, settings)
        return JSONResponse({"display": settings.display, "currencies": listed})

    return router
