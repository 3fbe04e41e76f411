"""Read access to the ledger for CLI tools: directly, or through a running worker's API.

chDB lets one process open a data directory at a time. While a worker owns it, tools call the
worker's authenticated HTTP API (``/api/v1``); the worker announces itself in a small state file
beside the directory (``<dir>.worker.json``). The token comes from ``SPENDSTREAM_TOKEN``, else
``[api] token`` in the config, else an ``admin.token`` file in the chDB directory or its parent
(written by ``spendstream dev``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from spendstream.errors import SpendstreamError, UnavailableError
from spendstream.money import decimal_text
from spendstream.sinks.client import chdb_directory
from spendstream.sinks.http_call import NoAnswer, exchange, json_body

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from spendstream.config import Settings
    from spendstream.sinks.pool import PooledReader

T = TypeVar("T")

API_PREFIX = "/api/v1"
TOKEN_ENV = "SPENDSTREAM_TOKEN"
TOKEN_FILE = "admin.token"


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]

    def records(self) -> list[dict[str, Any]]:
        """Each row as a dict by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class Reader(Protocol):
    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult: ...


def concurrency(reader: Reader) -> int:
    """How many queries ``reader`` runs at a time: its ``concurrency`` (a pool of clients, e.g.
    ``sinks.pool.PooledReader``), else one (a single client serves one query at a time)."""
    return int(getattr(reader, "concurrency", 1))


def read_at_once(reader: Reader, reads: Sequence[Callable[[], T]]) -> list[T]:
    """Each of ``reads``' results, in order: run at the same time on as many threads as
    ``reader`` serves queries at once (:func:`concurrency`), else one after the other."""
    workers = min(concurrency(reader), len(reads))
    if workers <= 1:
        return [read() for read in reads]
    from concurrent.futures import ThreadPoolExecutor  # not at import: the CLI starts without

    with ThreadPoolExecutor(workers, thread_name_prefix="read-at-once") as pool:
        return list(pool.map(lambda read: read(), reads))


def instant(value: datetime | str) -> datetime:
    """A ``DateTime`` value read through any :class:`Reader`: a datetime from a client, its ISO
    text (:func:`jsonable`) through a worker's API; in UTC either way."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return _utc(moment)


def jsonable(value: Any) -> Any:
    """ClickHouse values as JSON: Decimals as exact plain strings (no exponent or trailing
    zeros), datetimes as ISO 8601, times (``Time``, ``Time64``) as ``[-]HH:MM:SS[.ffffff]``,
    IP addresses and UUIDs as text, NaN and infinities as ``"nan"``, ``"inf"``, ``"-inf"``
    (JSON has no such numbers); anything else not JSON by nature as its text, never an error.
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, timedelta):
        return _duration_text(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if hasattr(value, "model_dump"):  # pydantic models (price tiers, overrides)
        return jsonable(value.model_dump())
    if isinstance(value, dict):
        return {_key_text(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    return str(value)  # IPv4Address, IPv6Address, UUID, and any type a driver adds


def _key_text(key: Any) -> str:
    shown = jsonable(key)
    return shown if isinstance(shown, str) else json.dumps(shown)


def _duration_text(value: timedelta) -> str:
    sign, value = ("-", -value) if value < timedelta(0) else ("", value)
    minutes, seconds = divmod(value.days * 86_400 + value.seconds, 60)
    hours, minutes = divmod(minutes, 60)
    fraction = f".{value.microseconds:06d}" if value.microseconds else ""
    return f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}{fraction}"


def wire_time(value: datetime) -> str:
    """An instant as explicit UTC ISO 8601 (``2026-11-30T08:00:00.000+00:00``)."""
    return _utc(value).isoformat(timespec="milliseconds")


class ClientReader:
    """Queries through a given clickhouse-connect client (chDB in this process, or a server)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult:
        from spendstream.sinks.errors import storage_errors  # the driver: only when used

        with storage_errors():
            result = self.client.query(sql, parameters=parameters or {})
        return QueryResult(list(result.column_names), [list(row) for row in result.result_rows])


# Every read of ours (direct, or the API's sessions: api.readers.limits) spills a GROUP BY to
# disk past this instead of growing memory (grouping by a run over millions of runs). A session
# setting, not a SETTINGS clause in the statement: free SQL through a worker refuses those.
SPILL_GROUP_BY_BYTES = 200_000_000
READ_SETTINGS = {"max_bytes_before_external_group_by": SPILL_GROUP_BY_BYTES}


# A direct read runs as many queries at a time as a worker's API does (WorkerReader.concurrency).
DIRECT_CLIENTS = 4


class DirectReader(ClientReader):
    """A :class:`ClientReader` on a new client for the configured ClickHouse (raises
    :class:`~spendstream.sinks.errors.StorageUnavailable` when it cannot be opened)."""

    def __init__(self, settings: Settings) -> None:
        from spendstream.sinks.client import connect
        from spendstream.sinks.errors import storage_errors

        with storage_errors():
            client = connect(
                settings.clickhouse.dsn, settings.clickhouse.database, settings=READ_SETTINGS
            )
        super().__init__(client)


class ApiError(SpendstreamError, RuntimeError):
    """A refusal from the API (4xx): ``status`` and the server's explanation."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail

    @staticmethod
    def from_answer(status: int, detail: str, retry_after: str | None = None) -> ApiError:
        """The class that tells the truth about ``status``: unavailable (429, 502-504),
        the server's bug (other 5xx), else a refusal."""
        if status in (429, 502, 503, 504):
            seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
            return ApiUnavailableError(status, detail, seconds)
        if status >= 500:
            return ApiServerError(status, detail)
        return ApiError(status, detail)


class ApiUnavailableError(ApiError, UnavailableError):
    """The API or what it reads from cannot answer now (connection refused, 503); retry after
    ``retry_after_s``. ``status`` is 0 when no answer came."""

    def __init__(self, status: int, detail: str, retry_after_s: float | None = None) -> None:
        super().__init__(status, detail)
        if retry_after_s is not None:
            self.retry_after_s = retry_after_s


class ApiServerError(ApiError):
    """The API failed with a bug (500); its error id is in ``detail`` and the server's log."""


class ApiClient:
    """A small client of the spendstream API (``base_url`` without ``/api/v1``)."""

    def __init__(self, base_url: str, token: str | None, timeout_s: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def request(
        self, method: str, path: str, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> Any:
        """``body`` (when not None) is sent as JSON; the answer's JSON is returned."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        content = None
        if body is not None:
            content = json_body(body)
            headers["Content-Type"] = "application/json"
        try:
            answer = exchange(
                method,
                f"{self.base_url}{API_PREFIX}{path}",
                params=params,
                body=content,
                headers=headers,
                timeout_s=self.timeout_s,
            )
        except NoAnswer as exc:  # refused, reset, timed out: no answer
            raise ApiUnavailableError(
                0, f"the worker's API at {self.base_url} did not answer ({exc})"
            ) from exc
        try:
            shown = answer.json()
        except ValueError:
            shown = {"detail": answer.text()}
        if answer.status >= 400:
            detail = shown.get("detail", shown) if isinstance(shown, dict) else shown
            if answer.status == 401 and not self.token:
                detail = f"{detail} (no token found: set {TOKEN_ENV} or [api] token)"
            raise ApiError.from_answer(answer.status, str(detail), answer.header("Retry-After"))
        return shown

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body=body)

    def table(self, path: str, params: Any = None) -> QueryResult:
        """A GET whose answer is ``{"columns": [...], "rows": [...]}``."""
        body = self.get(path, params)
        return QueryResult(body["columns"], body["rows"])


class WorkerReader:
    """The :class:`Reader` protocol over the API's free SQL (``POST /api/v1/sql``, admin
    tokens only); values arrive JSON-encoded (Decimals and datetimes as strings)."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api
        # The worker answers /sql on its API's pool of four read-only clients (api.server's
        # api_reader), and each request here is its own connection: the CLI's independent
        # reads (Explain's two periods, the recommendations' insights) may run at once.
        self.concurrency = 4

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult:
        body = self.api.post("/sql", {"query": sql, "parameters": wire_parameters(parameters)})
        return QueryResult(body["columns"], body["rows"])


def wire_parameters(parameters: dict[str, Any] | None) -> dict[str, Any]:
    """Query parameters as JSON, each in the text clickhouse-connect binds it with when the
    query runs directly, so a read through a worker asks exactly what it asks directly:
    datetimes in UTC to the second (the server reads them in its session zone, pinned to UTC,
    see sinks.client; a ``DateTime`` parameter refuses a fraction, and a direct read binds a
    ``DateTime64`` one to the second too), dates as ``YYYY-MM-DD``, inside lists as well."""
    return {key: _wire_value(value) for key, value in (parameters or {}).items()}


def _wire_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _utc(value).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_wire_value(item) for item in value]
    return value


def _utc(value: datetime) -> datetime:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def state_file(directory: Path) -> Path:
    return directory.with_name(directory.name + ".worker.json")


def announce_worker(settings: Settings) -> Path | None:
    """Record that this process serves the chDB directory (no-op for server DSNs)."""
    directory = chdb_directory(settings.clickhouse.dsn)
    if directory is None:
        return None
    path = state_file(directory)
    worker = settings.worker
    url = f"http://{worker.web_host}:{worker.web_port}"
    path.write_text(json.dumps({"pid": os.getpid(), "url": url}))
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_worker_url(settings: Settings) -> str | None:
    """The web URL of the live worker that owns the chDB directory, if any."""
    return worker_url_at(settings.clickhouse.dsn)


def worker_url_at(dsn: str) -> str | None:
    """:func:`running_worker_url` for a DSN."""
    directory = chdb_directory(dsn)
    if directory is None:
        return None
    path = state_file(directory)
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return str(state["url"]) if _pid_alive(int(state["pid"])) else None


def token_files(settings: Settings) -> list[Path]:
    """Where a local admin token may be kept for the configured chDB directory."""
    return _token_files_at(settings.clickhouse.dsn)


def _token_files_at(dsn: str) -> list[Path]:
    directory = chdb_directory(dsn)
    if directory is None:
        return []
    return [directory / TOKEN_FILE, directory.parent / TOKEN_FILE]


def api_token(settings: Settings) -> str | None:
    """The CLI's API token: ``$SPENDSTREAM_TOKEN``, ``[api] token``, or a local token file."""
    return token_for(settings.clickhouse.dsn, _configured_token(settings))


def _configured_token(settings: Settings) -> str | None:
    token = settings.api.token
    return None if token is None else token.get_secret_value()


def token_for(dsn: str, configured: str | None) -> str | None:
    """:func:`api_token` from the DSN and ``[api] token`` (``configured``)."""
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV].strip()
    if configured is not None:
        return configured
    for path in _token_files_at(dsn):
        try:
            return path.read_text().strip()
        except OSError:
            continue
    return None


def worker_api(settings: Settings) -> ApiClient | None:
    """A client of the worker that owns the chDB directory, or None when none runs."""
    return worker_api_at(settings.clickhouse.dsn, _configured_token(settings))


def worker_api_at(dsn: str, configured_token: str | None) -> ApiClient | None:
    """:func:`worker_api` from the DSN and ``[api] token`` (the CLI's quick settings read)."""
    url = worker_url_at(dsn)
    return ApiClient(url, token_for(dsn, configured_token)) if url else None


def open_reader(settings: Settings) -> WorkerReader | PooledReader:
    """A reader that works whether or not a worker currently holds the chDB directory: the
    worker's API, else up to :data:`DIRECT_CLIENTS` clients of this process's own, opened as
    queries need them (close them with ``close()``: chDB lets one process hold a directory)."""
    api = worker_api(settings)
    if api:
        return WorkerReader(api)
    return direct_reader(settings.clickhouse.dsn, settings.clickhouse.database)


def direct_reader(dsn: str, database: str) -> PooledReader:
    """Up to :data:`DIRECT_CLIENTS` clients of this process on ``dsn``, opened as queries need
    them, each session with :data:`READ_SETTINGS` (close them with ``close()``)."""
    from spendstream.sinks.client import connect
    from spendstream.sinks.pool import PooledReader  # the driver: only for a direct read

    return PooledReader(lambda: connect(dsn, database, settings=READ_SETTINGS), DIRECT_CLIENTS)
