"""Read access to the ledger for CLI tools: directly, or through a running worker.

chDB lets one process open a data directory at a time. While a worker owns it, tools read
through the worker's read-only ``/sql`` endpoint; the worker announces itself in a small state
file beside the directory (``<dir>.worker.json``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import httpx
from clickhouse_connect.driver.client import Client

from spendstream.config import Settings
from spendstream.sinks.client import chdb_directory, connect


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]


class Reader(Protocol):
    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult: ...


def jsonable(value: Any) -> Any:
    """ClickHouse values as JSON: Decimals as exact strings, datetimes as ISO 8601."""
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


class ClientReader:
    """Queries through a given clickhouse-connect client (chDB in this process, or a server)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult:
        result = self.client.query(sql, parameters=parameters or {})
        return QueryResult(list(result.column_names), [list(row) for row in result.result_rows])


class DirectReader(ClientReader):
    """A :class:`ClientReader` on a new client for the configured ClickHouse."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(connect(settings.clickhouse.dsn, settings.clickhouse.database))


class WorkerReader:
    """Queries through a running worker's ``/sql`` endpoint; values arrive JSON-encoded
    (Decimals and datetimes as strings)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult:
        response = httpx.post(
            f"{self.base_url}/sql",
            json={"query": sql, "parameters": _wire_parameters(parameters or {})},
            timeout=60.0,
        )
        body = response.json()
        if response.status_code != 200:
            raise RuntimeError(body.get("error", response.text))
        return QueryResult(body["columns"], body["rows"])


def _wire_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """Query parameters as JSON: datetimes in ClickHouse's own UTC text form."""
    return {
        key: value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        if isinstance(value, datetime)
        else value
        for key, value in parameters.items()
    }


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
    directory = chdb_directory(settings.clickhouse.dsn)
    if directory is None:
        return None
    path = state_file(directory)
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return str(state["url"]) if _pid_alive(int(state["pid"])) else None


def open_reader(settings: Settings) -> Reader:
    """A reader that works whether or not a worker currently holds the chDB directory."""
    url = running_worker_url(settings)
    return WorkerReader(url) if url else DirectReader(settings)
