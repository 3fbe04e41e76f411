"""ClickHouse connections from a DSN: embedded chDB directory or an HTTP server.

Every session is pinned to UTC (``session_timezone``): zone-less times in SQL and parameters
then mean UTC whatever the host's zone (``TZ``) is, in chDB and on a server alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from spendstream.errors import InputError

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

CHDB_SCHEME = "chdb://"
UTC_SESSION = {"session_timezone": "UTC"}
UTC = ZoneInfo("UTC")

# Whether :func:`connect` may create a missing ledger (chDB directory, database). Process-wide,
# not a context variable: a command's pooled reads open clients on other threads. The CLI's
# root turns it off for every command but the worker, ``dev`` and ``migrate``
# (:func:`ledger_creation`): a command run from the wrong directory must not make an empty
# ledger and report success.
_creating = True


class LedgerMissing(InputError):
    """No ledger at the configured DSN, and this process may not create one (exit 2)."""

    def __init__(self, dsn: str, database: str | None) -> None:
        directory = chdb_directory(dsn)
        if directory is not None:
            where = f"no ledger in {directory} (the chDB directory of {dsn!r}"
        else:
            parts = urlsplit(dsn)  # no credentials in the message
            port = f":{parts.port}" if parts.port else ""
            where = f"no ledger at {parts.scheme}://{parts.hostname}{port} (a ClickHouse server"
        where += f", database {database!r})" if database else ")"
        super().__init__(
            f"{where}: run the command from the project directory (where `spendstream dev` or "
            "the worker keeps ./data/clickhouse), set SPENDSTREAM_CLICKHOUSE__DSN (or "
            "[clickhouse] dsn in --config) to the ledger the worker writes, or start the worker "
            "there; `spendstream migrate` creates an empty ledger"
        )


def chdb_lock_holder(directory: Path) -> str | None:
    """Who holds ``directory`` when another process does (its ``status`` file, e.g. ``PID:
    1234``), else None. chDB's own error says only "Error initializing EmbeddedServer"; the
    lock is ClickHouse's ``flock`` on ``<dir>/status``, probed here the same way. Call it only
    after opening failed: a probe in the process that holds the directory finds it locked."""
    import fcntl

    status = directory / "status"
    try:
        with status.open("rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                text = handle.read(200).decode(errors="replace").splitlines()
                return next((line for line in text if line.startswith("PID")), "a process")
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return None
    return None


class DirectoryLocked(InputError):
    """Another process (a worker, ``spendstream dev``) holds the chDB directory (exit 2)."""

    def __init__(self, directory: Path, holder: str) -> None:
        super().__init__(
            f"the chDB directory {directory} is locked by another process ({holder}): another "
            "worker or `spendstream dev` holds it (one process per directory); stop that one, "
            "or give this worker its own directory or a ClickHouse server "
            "(SPENDSTREAM_CLICKHOUSE__DSN; docs/scaling.md)"
        )


def allow_ledger_creation(allowed: bool) -> bool:
    """From now on :func:`connect` creates a missing ledger only when ``allowed``; returns the
    previous setting."""
    global _creating
    before, _creating = _creating, allowed
    return before


@contextmanager
def ledger_creation(allowed: bool) -> Iterator[None]:
    """Within the block, :func:`connect` creates a missing ledger only when ``allowed``."""
    before = allow_ledger_creation(allowed)
    try:
        yield
    finally:
        allow_ledger_creation(before)


def chdb_directory(dsn: str) -> Path | None:
    """The data directory of a ``chdb://`` DSN (made absolute), or None for server DSNs."""
    if not dsn.startswith(CHDB_SCHEME):
        return None
    return Path(dsn[len(CHDB_SCHEME) :]).expanduser().resolve()


def connect(dsn: str, database: str | None = None, **kwargs: Any) -> Client:
    """Open a client (session pinned to UTC), creating the chDB directory and ``database``
    when missing (:class:`LedgerMissing` instead outside :func:`ledger_creation`). ``settings``
    in ``kwargs`` are added to the UTC pin.

    chDB allows one data directory per process (and one process per directory); several
    clients on the same directory in one process are fine.
    """
    import clickhouse_connect  # imported when a client is opened: the CLI starts without it

    directory = chdb_directory(dsn)
    creating = _creating
    if directory is not None:
        if not creating and not directory.is_dir():
            raise LedgerMissing(dsn, database)
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
        if database and not creating and not client.command(f"EXISTS DATABASE `{database}`"):
            raise LedgerMissing(dsn, database)  # a directory or server without our database
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
