"""Every ClickHouse client a worker (or ``spendstream serve``) opens, closed together at stop.

On chDB an open client keeps the engine up and the data directory locked for the life of the
process; on a server it keeps a connection pool. Parts receive :meth:`Clients.open` as their
``connect`` and never close what they were given: the owner of the :class:`Clients` does.
"""

from __future__ import annotations

import contextlib
import threading
from types import TracebackType

from clickhouse_connect.driver.client import Client

from spendstream.sinks.client import connect


class Clients:
    """Opens clients on one DSN and database, and closes every one of them (:meth:`close`)."""

    def __init__(self, dsn: str, database: str) -> None:
        self.dsn = dsn
        self.database = database
        self.opened: list[Client] = []
        self.lock = threading.Lock()

    def open(self) -> Client:
        client = connect(self.dsn, self.database)
        with self.lock:
            self.opened.append(client)
        return client

    def close(self) -> None:
        """Close every client opened, newest first; idempotent."""
        with self.lock:
            opened, self.opened = self.opened, []
        for client in reversed(opened):
            with contextlib.suppress(Exception):  # closing is best effort at shutdown
                client.close()

    def __enter__(self) -> Clients:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


__all__ = ["Clients"]
