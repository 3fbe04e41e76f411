"""What every route shares: the dependencies, JSON responses, time parsing."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from prometheus_client import CollectorRegistry

from spendstream.alerts.config import Alerting
from spendstream.api.guard import BodyLimit
from spendstream.auth.authenticator import TokenAuthenticator
from spendstream.auth.tokens import TokenStore
from spendstream.config import ApiSettings
from spendstream.config.network import LOOPBACK_NAMES
from spendstream.errors import InputError
from spendstream.moments import parse_named, parse_period
from spendstream.pricing.rating import Pricer
from spendstream.sinks.access import QueryResult, Reader, jsonable
from spendstream.sinks.errors import QueryError
from spendstream.sinks.sqlguard import SqlGuard


@dataclass(frozen=True)
class ApiDeps:
    """What the API is built from. ``reader`` must be read-only and limited (see
    :mod:`spendstream.api.readers`); ``silence`` applies a silence request (the worker's alert
    service, or a direct write when serving standalone), None when silences are unavailable.
    ``routers`` are mounted under ``/api/v1``; ``pages`` at the root (the dashboard).
    ``sql_guard`` checks free SQL (``POST /sql``) before it runs; without one free SQL is
    refused."""

    settings: ApiSettings
    reader: Reader
    tokens: TokenStore
    authenticator: TokenAuthenticator
    alerting: Alerting
    pricer: Pricer
    silence: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    metrics: CollectorRegistry | None = None
    routers: Sequence[APIRouter] = field(default_factory=tuple)
    # Routers whose paths are already absolute (the ingest router declares /api/v1/events).
    root_routers: Sequence[APIRouter] = field(default_factory=tuple)
    # Body limits of particular paths, over settings.max_body_bytes (ingest batches).
    body_limits: Mapping[str, BodyLimit] = field(default_factory=dict)
    # The dashboard's pages (mounted at the root, outside /api/v1).
    pages: Sequence[APIRouter] = field(default_factory=tuple)
    # Host header names answered (None: any); see spendstream.config.network.allowed_host_names.
    allowed_hosts: frozenset[str] | None = frozenset(LOOPBACK_NAMES)
    sql_guard: SqlGuard | None = None


def json_response(payload: Any, status: int = 200) -> Response:
    """Serialised by the calling thread (routes are sync, run off the event loop)."""
    return Response(json.dumps(jsonable(payload)).encode(), status, media_type="application/json")


def table_response(result: QueryResult, **extra: Any) -> Response:
    return json_response({**extra, "columns": result.columns, "rows": result.rows})


def parse_instant(text: str, name: str, now: datetime | None = None) -> datetime:
    """ISO 8601 (zone-less means UTC), ``now``, or a duration ago (``30m``, ``7d``), within the
    supported range (:mod:`spendstream.moments`); 400 saying what to write otherwise."""
    try:
        return parse_named(text, name, now)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


def parse_span(since: str, until: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """``since`` and ``until`` as a non-empty period (every route's one parse); 400 otherwise."""
    try:
        return parse_period(since, until, now)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


def run_query(deps: ApiDeps, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult:
    """Run a query the server wrote. The reader raises the truth (``sinks.errors``): over a
    limit is the caller's (400), an outage a 503, any other refusal of our own SQL a bug
    (500)."""
    return deps.reader.query(sql, parameters)


class CallerSqlRefused(InputError):
    """ClickHouse refused the caller's own SQL; the message is ClickHouse's first line."""


def run_caller_sql(
    deps: ApiDeps, sql: str, parameters: dict[str, Any] | None = None
) -> QueryResult:
    """Run SQL the caller wrote: ClickHouse's refusal is then the caller's mistake (400), and
    so is a result the driver cannot decode into Python (``map([1], 'x')``: TypeError;
    ``toDateTime64(-1e12, 3)``: ValueError), which our own queries never ask for."""
    try:
        return deps.reader.query(sql, parameters)
    except QueryError as exc:
        if isinstance(exc, InputError):
            raise
        raise CallerSqlRefused(str(exc)) from exc
    except (TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, InputError):
            raise
        raise CallerSqlRefused(
            f"the result holds a type or value this API cannot return ({type(exc).__name__}: "
            f"{str(exc)[:200]}): cast that column, e.g. toString(column)"
        ) from exc
