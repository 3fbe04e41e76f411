"""Reading through a running worker, without Typer: what ``report`` and ``sql`` need to ask a
worker's API and print its answer.

The Typer commands (:mod:`spendstream.cli.data`) and their quick path
(:mod:`spendstream.cli.quick`, which never imports Typer) both call these, so the two print the
same thing by construction. Nothing here imports the settings model, httpx or structlog until
used (``tests/test_cli_startup.py`` checks what a reading command loads).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from spendstream.cli.output import OutputFormat, emit, say
from spendstream.moments import parse_moment

if TYPE_CHECKING:
    from spendstream.client_settings import ClientSettings
    from spendstream.sinks.access import ApiClient, QueryResult


def read_moment(text: str, now: datetime | None = None) -> datetime:
    """``2026-11-01``, an ISO timestamp, ``now``, or a relative ``30m``/``24h``/``7d`` ago (UTC),
    within the supported range (:mod:`spendstream.moments`); ValueError saying what is accepted
    otherwise."""
    return parse_moment(text, now or datetime.now(UTC))


def worker_or_none(config: str | None) -> tuple[ApiClient, ClientSettings] | None:
    """The API of the worker that owns the configured chDB directory and the few settings a
    reading command needs, read without the settings model (~80 ms less at start), logging
    configured as :func:`~spendstream.cli.common.settings_or_exit` does; or None: no worker
    runs, or the configuration is one only the full settings judge (the caller then calls
    ``settings_or_exit``, which reports any error)."""
    from spendstream.client_settings import read_client_settings
    from spendstream.sinks.access import worker_api_at

    found = read_client_settings(config)
    if found is None:
        return None
    api = worker_api_at(found.dsn, found.api_token)
    if api is None:
        return None
    configure_cli_logging(found, quiet=True)
    return api, found


def configure_cli_logging(found: ClientSettings, quiet: bool) -> None:
    """Logs as configured; with ``quiet`` (every command but long-running services), info logs
    are hidden unless ``log.level`` was set explicitly."""
    from spendstream.logs import configure_logging

    level = found.log_level
    if quiet and not found.log_level_set and level.lower() == "info":
        level = "warning"
    configure_logging(level, found.log_format, found.secrets)


@dataclass(frozen=True)
class ReportAsked:
    """A report's question."""

    by: list[str]
    start: datetime
    end: datetime
    unpriced: bool
    limit: int

    @property
    def title(self) -> str:
        if self.unpriced:
            return "Unpriced events"
        period = f"{self.start:%Y-%m-%d %H:%M} → {self.end:%Y-%m-%d %H:%M} UTC"
        return f"Spend by {', '.join(self.by)}  {period}"


def print_worker_report(
    reached: tuple[ApiClient, ClientSettings],
    asked: ReportAsked,
    currency: str | None,
    output: OutputFormat | str,
) -> None:
    """The report from the worker's API (the same query, run server side), printed."""
    api, found = reached
    shown_in = (currency or found.currency_display or "USD").upper()
    emit(report_from_worker(api, asked, shown_in), output, asked.title)


def report_from_worker(api: ApiClient, asked: ReportAsked, shown_in: str) -> QueryResult:
    from spendstream.sinks.access import QueryResult as Result
    from spendstream.sinks.access import wire_time

    wanted: dict[str, Any] = {
        "by": asked.by,
        "since": wire_time(asked.start),
        "until": wire_time(asked.end),
        "limit": asked.limit,
        "unpriced": asked.unpriced,
        "currency": shown_in,
    }
    body = api.get("/spend", wanted)
    if body.get("truncated"):
        say_truncated(asked.limit)
    return Result(body["columns"], body["rows"])


def cut_report(result: QueryResult, limit: int) -> QueryResult:
    """``result`` (read with ``limit + 1`` rows) kept to ``limit`` rows, saying so on stderr
    when it had more: the printed rows then miss spend."""
    from spendstream.sinks.access import QueryResult as Result

    if len(result.rows) <= limit:
        return result
    say_truncated(limit)
    return Result(result.columns, result.rows[:limit])


def say_truncated(limit: int) -> None:
    say(
        "truncated:",
        f"only the first {limit} rows are shown and more exist; raise --limit, narrow "
        "--since/--until or group by fewer tags",
        "yellow",
    )


class QueryRefused(Exception):
    """The worker's API refused a query (4xx, e.g. its SQL guard): exit 1 with what it said."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.label = f"query failed (HTTP {status}):"
        self.detail = detail


def query_worker(api: ApiClient, text: str) -> QueryResult:
    """``text`` run by the worker; :class:`QueryRefused` when the API refuses it. Storage
    unavailable and the API's own errors propagate (exit 3 and 4, spendstream.cli.errors)."""
    from spendstream.errors import UnavailableError
    from spendstream.sinks.access import ApiError, ApiServerError, WorkerReader

    try:
        return WorkerReader(api).query(text)
    except ApiError as exc:
        if isinstance(exc, UnavailableError | ApiServerError):
            raise
        raise QueryRefused(exc.status, exc.detail) from None
