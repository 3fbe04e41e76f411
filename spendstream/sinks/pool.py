"""A small pool of ClickHouse clients behind the :class:`~spendstream.sinks.access.Reader`
protocol: several queries at a time (``concurrency``), each on a client of its own, since a
ClickHouse session refuses concurrent queries. The API serves requests through one (read-only
sessions: ``api.readers``); the CLI reads a chDB directory no worker holds through one, so a
command that reads several things at once (Explain's two periods, the recommendations' parts)
reads them at the same time on either path. Blocking: call from threads.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from spendstream.sinks.access import QueryResult
from spendstream.sinks.errors import StorageUnavailable, storage_errors

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client


class PooledReader:
    """The :class:`spendstream.sinks.access.Reader` protocol over up to ``size`` clients."""

    def __init__(self, factory: Callable[[], Client], size: int = 4) -> None:
        self.factory = factory
        self.concurrency = size  # queries at a time (sinks.access.concurrency)
        # None: a client not opened yet. get() blocks while every client is busy.
        self.pool: queue.LifoQueue[Client | None] = queue.LifoQueue()
        for _ in range(size):
            self.pool.put(None)

    def _borrow(self) -> tuple[Client, bool]:
        """A client and whether it was opened just now (False: it has waited in the pool)."""
        client = self.pool.get()
        if client is not None:
            return client, False
        return self._open(), True

    def _open(self) -> Client:
        try:
            with storage_errors():
                return self.factory()
        except BaseException:
            self.pool.put(None)
            raise

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult:
        client, fresh = self._borrow()
        try:
            result = self._run(client, sql, parameters)
        except StorageUnavailable:
            if fresh:
                raise
            # A client idle through an outage may keep a dead connection after storage is back:
            # a read is safe to repeat, so try once more. The failed client's slot went back
            # to the top of the (LIFO) pool as "not opened", so this borrow opens a new client.
            result = self._run(self._borrow()[0], sql, parameters)
        return QueryResult(list(result.column_names), [list(r) for r in result.result_rows])

    def _run(self, client: Client, sql: str, parameters: dict[str, Any] | None) -> Any:
        """One query on a borrowed client; the client goes back to the pool either way."""
        try:
            with storage_errors():
                result = client.query(sql, parameters=parameters or {})
        except BaseException:
            # A refused or interrupted query can leave the client's stream mid-way: use a
            # fresh one next time.
            self.pool.put(None)
            with contextlib.suppress(Exception):
                client.close()
            raise
        self.pool.put(client)
        return result

    def close(self) -> None:
        """Close the idle clients (call once the server has stopped: none is borrowed then)."""
        while True:
            try:
                client = self.pool.get_nowait()
            except queue.Empty:
                return
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
