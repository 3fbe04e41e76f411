"""What one free-SQL answer may cost (spendstream.api.answers) and the results the driver cannot
decode (spendstream.api.common.run_caller_sql): each a 4xx saying what to change, never a 500 or
gigabytes. Storage tests on a real chDB (the driver's decoding is what is under test)."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import pytest
from clickhouse_connect.driver.client import Client
from fastapi import HTTPException

from spendstream.api.answers import ONE_AT_A_TIME, bounded_table, count_values
from spendstream.api.common import CallerSqlRefused, run_caller_sql
from spendstream.api.errors import status_for
from spendstream.errors import BusyError
from spendstream.sinks.access import ClientReader, QueryResult

pytestmark = pytest.mark.storage
LIMIT = 1024 * 1024  # api.max_result_bytes in these tests: 131,072 values


def answer(client: Client, sql: str, limit: int = LIMIT) -> dict[str, object]:
    deps = SimpleNamespace(reader=ClientReader(client))
    run = lambda: run_caller_sql(deps, sql)  # type: ignore[arg-type]  # noqa: E731
    return json.loads(bounded_table(run, limit, 1.0).body)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT map([1], 'x')",  # TypeError in the driver's decoding
        "SELECT toDateTime64(-1e12, 3)",  # ValueError in the driver's decoding
    ],
)
def test_a_result_the_driver_cannot_decode_is_a_400(ledger_client: Client, sql: str) -> None:
    with pytest.raises(CallerSqlRefused, match=r"cannot return .* cast that column") as refused:
        answer(ledger_client, sql)
    assert status_for(refused.value) == 400
    assert answer(ledger_client, sql.replace("SELECT ", "SELECT toString(") + ")")["rows"]


def test_an_answer_of_too_many_values_is_refused_before_it_is_copied(ledger_client: Client) -> None:
    """200,000 UInt8 are 200 kB to ClickHouse (under its limit) but 200,000 Python objects."""
    with pytest.raises(HTTPException) as refused:
        answer(ledger_client, "SELECT arrayWithConstant(200000, 0)")
    assert refused.value.status_code == 413 and "add a LIMIT" in str(refused.value.detail)
    assert answer(ledger_client, "SELECT arrayWithConstant(1000, 0)")["rows"] == [[[0] * 1000]]


def test_an_answer_whose_json_is_too_long_is_refused(ledger_client: Client) -> None:
    """One string of 600,000 quotes: one value, 600 kB to ClickHouse, 1.2 MB of JSON."""
    with pytest.raises(HTTPException) as refused:
        answer(ledger_client, "SELECT repeat('\"', 600000)")
    assert refused.value.status_code == 413 and "bytes of JSON" in str(refused.value.detail)


def test_answers_are_built_one_at_a_time() -> None:
    """A second answer waits for the first (memory does not add up), then is told to retry."""
    started, release = threading.Event(), threading.Event()

    def slow() -> QueryResult:
        started.set()
        release.wait(10)
        return QueryResult(["x"], [[1]])

    first = threading.Thread(target=bounded_table, args=(slow, LIMIT, 10.0))
    first.start()
    started.wait(10)
    with pytest.raises(BusyError):
        bounded_table(lambda: QueryResult(["x"], [[2]]), LIMIT, 0.05)
    release.set()
    first.join(10)
    assert ONE_AT_A_TIME.acquire(timeout=1)
    ONE_AT_A_TIME.release()


def test_values_are_counted_through_nesting_and_stop_past_the_budget() -> None:
    rows = [[1, [2, 3], {"a": (4, 5)}]]
    assert count_values(rows, 100) == 1 + 3 + 2 + 1 + 2
    assert count_values([[list(range(10**6))], [[1]] * 10**6], 10) == 2 + 10**6  # stopped
