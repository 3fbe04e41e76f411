"""api.readers.PooledReader: a client that idled through an outage is replaced, not reported.

Pure unit tests with stand-in clients (the outage itself runs for real in
tests/test_clickhouse_outage.py)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.sinks.errors import QueryError, StorageUnavailable
from spendstream.sinks.pool import PooledReader


class Result:
    column_names = ("x",)
    result_rows = ((1,),)


class StandIn:
    """A client whose connection is ``alive`` or not; counts queries and closes."""

    def __init__(self, opened: list[StandIn], fail_with: type[Exception] = OSError) -> None:
        self.alive = True
        self.closed = False
        self.queries = 0
        self.fail_with = fail_with
        opened.append(self)

    def query(self, sql: str, parameters: dict[str, Any]) -> Result:
        self.queries += 1
        if not self.alive:
            raise self.fail_with("connection reset by peer")
        return Result()

    def close(self) -> None:
        self.closed = True


def reader(opened: list[StandIn], size: int = 2, **kw: Any) -> PooledReader:
    return PooledReader(lambda: cast(Client, StandIn(opened, **kw)), size=size)


def test_a_pooled_client_with_a_dead_connection_is_replaced_and_the_read_answers() -> None:
    opened: list[StandIn] = []
    pool = reader(opened)
    assert pool.query("SELECT 1").rows == [[1]]
    opened[0].alive = False  # storage went away and came back while the client idled
    assert pool.query("SELECT 1").rows == [[1]]
    assert len(opened) == 2 and opened[0].closed and opened[1].queries == 1
    assert pool.query("SELECT 1").rows == [[1]]  # the new client stays in the pool
    assert len(opened) == 2 and opened[1].queries == 2


def test_a_fresh_client_that_fails_is_reported_once_not_retried() -> None:
    opened: list[StandIn] = []
    pool = PooledReader(lambda: cast(Client, dead(opened)), size=2)
    with pytest.raises(StorageUnavailable):
        pool.query("SELECT 1")
    assert len(opened) == 1  # storage is down: one attempt, a 503, no second connection


def test_a_query_the_server_refuses_is_not_repeated() -> None:
    class Refusing(StandIn):
        def query(self, sql: str, parameters: dict[str, Any]) -> Result:
            self.queries += 1
            if self.queries > 1:
                raise ValueError("Code: 62. DB::Exception: Syntax error")
            return Result()

    opened: list[StandIn] = []
    pool = PooledReader(lambda: cast(Client, Refusing(opened)), size=1)
    pool.query("SELECT 1")
    with pytest.raises((QueryError, ValueError)):
        pool.query("SELEC 1")
    assert len(opened) == 1  # a refusal is the query's fault: not retried


def test_slots_stay_at_the_pool_size_through_failures() -> None:
    opened: list[StandIn] = []
    pool = reader(opened, size=2)
    pool.query("SELECT 1")
    opened[0].alive = False
    pool.query("SELECT 1")
    assert pool.pool.qsize() == 2


def dead(opened: list[StandIn]) -> StandIn:
    client = StandIn(opened)
    client.alive = False
    return client
