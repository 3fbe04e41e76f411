"""ClickHouse connections from a DSN: embedded chDB directory or an HTTP server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

CHDB_SCHEME = "chdb://"


def chdb_directory(dsn: str) -> Path | None:
    """The data directory of a ``chdb://`` DSN (made absolute), or None for server DSNs."""
    if not dsn.startswith(CHDB_SCHEME):
        return None
    return Path(dsn[len(CHDB_SCHEME) :]).expanduser().resolve()


def connect(dsn: str, database: str | None = None, **kwargs: Any) -> Client:
    """Open a client, creating the chDB directory and ``database`` when missing.

    chDB allows one data directory per process (and one process per directory); several
    clients on the same directory in one process are fine.
    """
    directory = chdb_directory(dsn)
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        dsn = f"{CHDB_SCHEME}{directory}"
    if database:
        bootstrap = clickhouse_connect.get_client(dsn=dsn)
        bootstrap.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        if directory is None:
            bootstrap.close()
    return clickhouse_connect.get_client(dsn=dsn, database=database or "default", **kwargs)
