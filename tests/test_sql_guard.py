"""The free-SQL guard (issue 24) against the real parser, on chDB in this process and on a
ClickHouse server (chDB serving HTTP): every hostile statement of the corpus, every table
function and every function ClickHouse has but the allowlist, refused with a message naming
what; real analytics queries still answered, with the answers the unguarded query gives.
The same through the real API: tests/test_sql_guard_api.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.api.readers import limits
from spendstream.config import ApiSettings
from spendstream.events import UsageEvent
from spendstream.sinks import sql_allowlist as allow
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from spendstream.sinks.sqlguard import (
    SqlGuard,
    SqlRefused,
    function_allowed,
    reader_parser,
)
from tests.support.chdb_http import ChdbHttpServer
from tests.support.ledger_data import fill_ledger, generate
from tests.support.ledger_template import copy_template
from tests.support.sql_corpus import ANALYTICS, HOSTILE

pytestmark = pytest.mark.integration


@dataclass
class Backend:
    name: str
    writer: Client  # unguarded, for the reference answers
    reader: ClientReader  # the API's read-only, limited session
    guard: SqlGuard
    events: list[UsageEvent]


def _backend(name: str, dsn: str) -> Backend:
    """A migrated ledger at ``dsn`` (a copy of the session's template) with 120 events."""
    writer = connect(dsn, "spendstream")
    events = generate(120)
    fill_ledger(writer, events)
    reader = ClientReader(connect(dsn, "spendstream", settings=limits(ApiSettings())))
    return Backend(name, writer, reader, SqlGuard(reader_parser(reader), "spendstream"), events)


@pytest.fixture(scope="module")
def chdb_backend(
    tmp_path_factory: pytest.TempPathFactory, migrated_template: Path
) -> Iterator[Backend]:
    path = copy_template(migrated_template, tmp_path_factory.mktemp("guard") / "clickhouse")
    backend = _backend("chdb", f"chdb://{path}")
    yield backend
    # chDB holds one data directory per process: later tests in this process open others.
    backend.reader.client.close()
    backend.writer.close()


@pytest.fixture(scope="module")
def http_backend(
    tmp_path_factory: pytest.TempPathFactory, migrated_template: Path
) -> Iterator[Backend]:
    path = copy_template(migrated_template, tmp_path_factory.mktemp("guard-http") / "clickhouse")
    with ChdbHttpServer(path) as server:
        yield _backend("http", server.dsn)


@pytest.fixture(scope="module", params=["chdb", "http"])
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.getfixturevalue(f"{request.param}_backend")  # type: ignore[no-any-return]


def refusal(guard: SqlGuard, sql: str, parameters: dict[str, Any] | None = None) -> str:
    with pytest.raises(SqlRefused) as refused:
        guard.check(sql, parameters)
    return str(refused.value)


def test_the_corpus_is_large_enough() -> None:
    assert len(HOSTILE) >= 80
    assert len({sql for sql, _ in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize(("sql", "named"), HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_hostile_statement_is_refused_naming_what(backend: Backend, sql: str, named: str) -> None:
    assert named in refusal(backend.guard, sql)


@pytest.mark.parametrize("sql", ANALYTICS, ids=[str(i) for i in range(len(ANALYTICS))])
def test_analytics_query_is_answered_as_without_the_guard(backend: Backend, sql: str) -> None:
    backend.guard.check(sql)
    answered = backend.reader.query(sql)
    reference = backend.writer.query(sql)
    assert answered.rows == [list(row) for row in reference.result_rows]
    assert answered.rows, sql


def test_analytics_answers_match_the_events(backend: Backend) -> None:
    """Independent figures: calls and input tokens per team, straight from the events."""
    sql = "SELECT team, count(), sum(input_tokens) FROM ledger FINAL GROUP BY team ORDER BY team"
    backend.guard.check(sql)
    expected: dict[str, list[int]] = {}
    for event in backend.events:
        totals = expected.setdefault(event.tags.get("team", ""), [0, 0])
        totals[0] += 1
        totals[1] += event.input_tokens
    assert backend.reader.query(sql).rows == [[t, *v] for t, v in sorted(expected.items())]


def test_parameters_are_bound_by_the_server_only(backend: Backend) -> None:
    sql = "SELECT count() FROM ledger WHERE team = {team:String} AND input_tokens > {n:UInt64}"
    backend.guard.check(sql, {"team": "search", "n": 0})
    expected = sum(1 for e in backend.events if e.tags.get("team") == "search")
    assert backend.reader.query(sql, {"team": "search", "n": 0}).rows == [[expected]]
    # Client-side %-formatting would change the text after the check (this parses as
    # `10 % (x) AS s`, and the driver would then format file(...) in on the client).
    assert "placeholders" in refusal(backend.guard, "SELECT 10 %(x)s", {"x": "file('/x')"})


def test_checking_executes_nothing(backend: Backend, tmp_path: Path) -> None:
    target = tmp_path / "written.pth"
    refusal(backend.guard, f"SELECT 'import os' INTO OUTFILE '{target}' TRUNCATE")
    refusal(backend.guard, "SELECT sleepEachRow(3) FROM numbers(100)")
    assert not target.exists()


# Table functions whose arguments must be a query to parse.
SPECIAL_ARGUMENTS = {
    "view": "SELECT 1",
    "viewIfPermitted": "SELECT 1 ELSE null('a Int8')",
    "viewExplain": "'EXPLAIN', '', (SELECT 1)",
}


def test_every_table_function_but_the_allowed_is_refused(backend: Backend) -> None:
    """Enumerated from the server, so a table function a new release adds cannot slip past."""
    names = [
        str(r[0])
        for r in backend.writer.query("SELECT name FROM system.table_functions").result_rows
    ]
    assert len(names) > 50 and set(names) >= allow.TABLE_FUNCTIONS
    for name in names:
        if name in allow.TABLE_FUNCTIONS:
            continue
        arguments = SPECIAL_ARGUMENTS.get(name, "1")
        assert refusal(backend.guard, f"SELECT * FROM `{name}`({arguments})") == (
            f"table function {name} is not allowed"
        )


def test_every_function_outside_the_allowlist_is_refused(chdb_backend: Backend) -> None:
    """Each name in system.functions is refused, through the real parse, unless it or the
    function it aliases is on the list: no name is allowed only because its case differs from
    an allowed one or because it ends like a combinator."""
    listed = allow.FUNCTIONS | allow.AGGREGATE_FUNCTIONS
    rows = chdb_backend.writer.query(
        "SELECT name, alias_to, is_aggregate FROM system.functions"
    ).result_rows
    assert len(rows) > 1500
    refused = 0
    for name, alias_to, _ in rows:
        if function_allowed(name):
            assert name in listed or alias_to in listed, name
            continue
        assert refusal(chdb_backend.guard, f"SELECT `{name}`(1)") == (
            f"function {name} is not allowed"
        )
        refused += 1
    assert refused > 300


def test_allowlisted_names_exist(chdb_backend: Backend) -> None:
    """A misspelt allowlist entry would be dead weight: every name is a real function."""
    names = {
        str(r[0])
        for r in chdb_backend.writer.query("SELECT name FROM system.functions").result_rows
    }
    parser_only = {"lambda", "exists", "grouping"}
    assert allow.FUNCTIONS - names == parser_only
    assert names >= allow.AGGREGATE_FUNCTIONS


def test_combinators_compose_only_on_allowed_aggregates() -> None:
    for name in (
        "sumIf",
        "uniqExactState",
        "quantilesMerge",
        "sumArrayIf",
        "avgOrNull",
        "countDistinctIf",
        "sumForEachIf",
        "anyLastMergeState",
        "COUNTIF",
    ):
        assert function_allowed(name), name
    for name in ("fileIf", "dictGetState", "urlArray", "sleepIf", "hostNameOrNull"):
        assert not function_allowed(name), name


def test_system_tables_allowed_are_readable(backend: Backend) -> None:
    for table in sorted(allow.SYSTEM_TABLES):
        sql = f"SELECT count() > 0 FROM (SELECT * FROM system.{table} LIMIT 1)"
        backend.guard.check(sql)
        assert backend.reader.query(sql).rows == [[True]], table


def test_statements_too_deep_to_check_are_refused(backend: Backend) -> None:
    nested = "SELECT " + "plus(1, " * 400 + "1" + ")" * 400
    assert "nested too deeply" in refusal(backend.guard, nested)
    parenthesised = "SELECT " + "(" * 2000 + "1" + ")" * 2000
    assert "parse depth" in refusal(backend.guard, parenthesised)
