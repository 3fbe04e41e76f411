"""ClickHouse connections from a DSN: embedded chDB directory or an HTTP server.

Every session is pinned to UTC (``session_timezone``): zone-less times in SQL and parameters
then mean UTC whatever the host's zone (``TZ``) is, in chDB and on a server alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

CHDB_SCHEME = "chdb://"
UTC_SESSION = {"session_timezone": "UTC"}
UTC = ZoneInfo("UTC")


def chdb_directory(dsn: str) -> Path | None:
    """The data directory of a ``chdb://`` DSN (made absolute), or None for server DSNs."""
    if not dsn.startswith(CHDB_SCHEME):
        return None
    return Path(dsn[len(CHDB_SCHEME) :]).expanduser().resolve()


def connect(dsn: str, database: str | None = None, **kwargs: Any) -> Client:
    """Open a client (session pinned to UTC), creating the chDB directory and ``database``
    when missing. ``settings`` in ``kwargs`` are added to the UTC pin.

    chDB allows one data directory per process (and one process per directory); several
    clients on the same directory in one process are fine.
    """
    import clickhouse_connect  # imported when a client is opened: the CLI starts without it

    directory = chdb_directory(dsn)
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        dsn = f"{CHDB_SCHEME}{directory}"
    extra = kwargs.pop("settings", {})
    # One client, not a second one only to create the database (each costs its start-up
    # queries; a worker opens ~10): it connects without a database (which may not exist yet),
    # creates it and then names it with every statement (the driver sends ``database`` with
    # each query; chDB applies it with USE). The caller's settings come after the DDL: a
    # ``readonly`` session could not run it. As ``get_client`` does with them, in order.
    client = clickhouse_connect.get_client(dsn=dsn, settings=UTC_SESSION, **kwargs)
    try:
        if database:
            client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
            client.database = database
        for key, value in extra.items():
            client.set_client_setting(key, value)
    except BaseException:
        client.close()  # on chDB a handle left open keeps the directory locked
        raise
    # The driver renders datetime parameters in the zone the server reported at connect time
    # (chDB reports the host's zone); the session is UTC, so render in UTC.
    client.server_tz = UTC
    return client
