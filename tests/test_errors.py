"""The one error hierarchy and its mappings: driver errors → types → HTTP answers, exit codes.

Unit tests (real chDB and a refused socket for the driver errors; an in-process FastAPI app for
the HTTP mapping; the real Typer app for the exit codes). Outages of running services are in
tests/test_clickhouse_outage.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import clickhouse_connect
import pytest
import typer
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError, ProgrammingError
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from spendstream.alerts.config import load_alerting
from spendstream.alerts.status import firing_alerts
from spendstream.api import create_api
from spendstream.api.errors import install_error_mapping, status_for
from spendstream.api.server import standard_deps
from spendstream.auth.authenticator import SESSION_COOKIE
from spendstream.auth.roles import Role
from spendstream.auth.tokens import EscalationError, TokenError
from spendstream.cli.errors import (
    EXIT_BUG,
    EXIT_FAILED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    exit_code_for,
)
from spendstream.cli.root import ErrorMappingGroup
from spendstream.config import ConfigError, load_settings
from spendstream.dashboard.pages import dashboard_router
from spendstream.decisions import QuotaExceeded
from spendstream.embedded import EmbeddedError, free_port
from spendstream.errors import (
    BusyError,
    ConflictError,
    ForbiddenError,
    InputError,
    NotFoundError,
    SpendstreamError,
    UnavailableError,
)
from spendstream.events import EventError
from spendstream.ingest.http import BodyError
from spendstream.ingest.otlp import OtlpDecodeError
from spendstream.ingest.publisher import PublisherBusy
from spendstream.insights.base import InsightError
from spendstream.jsonbody import JsonBodyError
from spendstream.logs import configure_logging
from spendstream.pricing import default_pricer
from spendstream.pricing.catalog import PricingError
from spendstream.producers.extractors import UsageExtractionError
from spendstream.producers.spool import SpoolBusy, SpoolLockTimeout
from spendstream.reconcile.fetch import FetchError, RetryableStatus
from spendstream.reconcile.lines import ReportError
from spendstream.sinks.access import (
    ApiClient,
    ApiError,
    ApiServerError,
    ApiUnavailableError,
    ClientReader,
    QueryResult,
)
from spendstream.sinks.errors import (
    UNKNOWN_TABLE,
    QueryError,
    QueryLimitError,
    StorageUnavailable,
    storage_error,
)
from spendstream.sinks.http_call import NoAnswer
from spendstream.stream.dlq import DlqLimitExceeded
from spendstream.stream.isolation import RollupRefreshFailed

# Every class spendstream raised before the hierarchy, with the base it must keep (callers and
# tests still catch those) and the branch it now belongs to.
RE_BASED: list[tuple[BaseException, type[BaseException], type[SpendstreamError]]] = [
    (ConfigError("x"), Exception, InputError),
    (PricingError("x"), ConfigError, InputError),
    (TokenError("x"), ValueError, InputError),
    (EscalationError("x"), TokenError, ForbiddenError),
    (EventError("x"), ValueError, InputError),
    (UsageExtractionError("x"), ValueError, InputError),
    (OtlpDecodeError("x"), ValueError, InputError),
    (ReportError("x"), ValueError, InputError),
    (InsightError("x"), ValueError, InputError),
    (BodyError(413, "x"), Exception, InputError),
    (SpoolBusy("x"), RuntimeError, ConflictError),
    (SpoolLockTimeout("x"), TimeoutError, UnavailableError),
    (PublisherBusy(3), Exception, BusyError),
    (RetryableStatus(503, 7), Exception, UnavailableError),
    (EmbeddedError("x"), RuntimeError, SpendstreamError),
    (QuotaExceeded.__new__(QuotaExceeded), Exception, SpendstreamError),
    (DlqLimitExceeded("x"), Exception, SpendstreamError),
    (RollupRefreshFailed("x"), Exception, SpendstreamError),
    (FetchError("x"), Exception, SpendstreamError),
    (ApiError(404, "x"), RuntimeError, SpendstreamError),
    (JsonBodyError("x"), ValueError, InputError),
]


@pytest.mark.parametrize(("error", "old_base", "branch"), RE_BASED)
def test_every_error_class_has_the_one_base_and_keeps_its_old_one(
    error: BaseException, old_base: type[BaseException], branch: type[SpendstreamError]
) -> None:
    assert isinstance(error, old_base)
    assert isinstance(error, branch)


def test_retry_after_is_carried_by_unavailable_errors() -> None:
    assert PublisherBusy(3).retry_after_s == 3
    assert RetryableStatus(503, 7).retry_after_s == 7
    assert RetryableStatus(503, None).retry_after_s == UnavailableError("x").retry_after_s
    assert "retry in 3 s" in str(PublisherBusy(3))  # the message is unchanged


# --- driver errors → types (sinks.errors) ----------------------------------------------------


def test_a_refused_connection_is_storage_unavailable() -> None:
    with pytest.raises(OperationalError) as raised:
        clickhouse_connect.get_client(dsn=f"http://127.0.0.1:{free_port()}")
    mapped = storage_error(raised.value)
    assert isinstance(mapped, StorageUnavailable)
    assert str(mapped).startswith("ClickHouse unavailable:")


def test_a_locked_chdb_directory_is_storage_unavailable() -> None:
    # The exact text clickhouse-connect raises when another process holds the directory.
    locked = ProgrammingError(
        "Unable to open the chdb engine at '/data': Failed to create connection: Code: 36. "
        "DB::Exception: Error initializing EmbeddedServer: . (BAD_ARGUMENTS)"
    )
    assert isinstance(storage_error(locked), StorageUnavailable)
    assert isinstance(storage_error(ConnectionResetError()), StorageUnavailable)


def test_query_refusals_carry_their_code_and_limits_are_the_callers(ledger_client: Client) -> None:
    reader = ClientReader(ledger_client)
    with pytest.raises(QueryError) as syntax:
        reader.query("SELEC 1")
    assert syntax.value.code == 62 and not isinstance(syntax.value, InputError)
    with pytest.raises(QueryError) as missing:
        reader.query("SELECT * FROM no_such_table")
    assert missing.value.code == UNKNOWN_TABLE
    with pytest.raises(QueryLimitError) as limited:
        reader.query("SELECT count() FROM numbers(1000000) SETTINGS max_rows_to_read = 10")
    assert isinstance(limited.value, InputError) and "ask for less" in str(limited.value)
    assert storage_error(KeyError("ours")) is None  # not the driver's: a bug, left alone


class FailingReader:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def query(self, sql: str, parameters: dict[str, object] | None = None) -> QueryResult:
        raise self.error


def test_firing_alerts_reports_an_outage_instead_of_nothing_firing() -> None:
    with pytest.raises(StorageUnavailable):
        firing_alerts(FailingReader(StorageUnavailable("ClickHouse unavailable: refused")), ["b"])
    with pytest.raises(QueryError):
        firing_alerts(FailingReader(QueryError("query refused: bad column", 47)), ["b"])
    # Only a missing alert table (never migrated) means nothing has fired.
    assert firing_alerts(FailingReader(QueryError("no table", UNKNOWN_TABLE)), ["b"]) == {}


# --- types → HTTP (api.errors) ---------------------------------------------------------------


class Bug(Exception):
    pass


RAISED: dict[str, Exception] = {
    "input": EventError("event_time: not a time; send ISO 8601"),
    "missing": NotFoundError("no budget 'x'"),
    "forbidden": EscalationError("may not grant admin"),
    "conflict": SpoolBusy("spool held by another process"),
    "unavailable": StorageUnavailable("ClickHouse unavailable: refused", 2.5),
    "busy": PublisherBusy(3),
    "limit": QueryLimitError("query over a limit: TOO_MANY_ROWS; ask for less", 158),
    "our_sql": QueryError("query refused: Unknown identifier", 47),
    "bug": Bug("a KeyError in disguise"),
}


def raising(error: Exception) -> Callable[[], None]:
    def route() -> None:
        raise error

    return route


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = FastAPI()
    for name, error in RAISED.items():
        app.add_api_route(f"/{name}", raising(error))
    install_error_mapping(app)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("input", 400),
        ("missing", 404),
        ("forbidden", 403),
        ("conflict", 409),
        ("limit", 400),
        ("unavailable", 503),
        ("busy", 429),
        ("our_sql", 500),
        ("bug", 500),
    ],
)
def test_each_class_gets_its_status(client: TestClient, path: str, status: int) -> None:
    answer = client.get(f"/{path}")
    assert answer.status_code == status, answer.text
    assert status_for(RAISED[path]) == (None if status == 500 else status)
    if status < 500:
        assert answer.json()["detail"] == str(RAISED[path])


def test_unavailable_answers_say_when_to_retry(client: TestClient) -> None:
    down = client.get("/unavailable")
    assert down.headers["Retry-After"] == "3"  # 2.5 s, rounded up
    assert down.json()["retry_after"] == 3
    assert "ClickHouse unavailable" in down.json()["detail"]
    assert client.get("/busy").headers["Retry-After"] == "3"
    assert "Retry-After" not in client.get("/input").headers


def test_a_bug_answers_500_with_an_id_that_is_in_the_log(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "json")
    capsys.readouterr()
    answer = client.get("/bug")
    body = answer.json()
    assert answer.status_code == 500
    assert body["error_id"] in body["detail"] and body["instance"].endswith(body["error_id"])
    assert "a KeyError in disguise" not in answer.text  # internals stay in the log
    log = capsys.readouterr().err
    [line] = [line for line in log.splitlines() if body["error_id"] in line]
    assert '"unexpected error"' in line and "Traceback" in line and "a KeyError in disguise" in line


# --- the API client: answers → types -----------------------------------------------------------


def test_the_api_client_tells_outages_refusals_and_bugs_apart() -> None:
    assert isinstance(ApiError.from_answer(503, "down", "4"), ApiUnavailableError)
    assert ApiError.from_answer(503, "down", "4").retry_after_s == 4  # type: ignore[attr-defined]
    assert isinstance(ApiError.from_answer(429, "busy"), UnavailableError)
    assert isinstance(ApiError.from_answer(500, "bug id 1"), ApiServerError)
    refused = ApiError.from_answer(403, "no")
    assert type(refused) is ApiError and refused.status == 403
    with pytest.raises(ApiUnavailableError) as nobody:
        ApiClient(f"http://127.0.0.1:{free_port()}", "t", timeout_s=5).get("/spend")
    assert nobody.value.status == 0 and isinstance(nobody.value.__cause__, NoAnswer)
    assert isinstance(nobody.value.__cause__.__cause__, ConnectionRefusedError)


# --- types → exit codes (cli.errors) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("bad [pricing]"), EXIT_USAGE),
        (EventError("bad line"), EXIT_USAGE),
        (StorageUnavailable("ClickHouse unavailable: refused"), EXIT_UNAVAILABLE),
        (ApiUnavailableError(503, "down"), EXIT_UNAVAILABLE),
        (ApiError(403, "lacks the admin permission"), EXIT_FAILED),  # as before the table
        (ApiServerError(500, "error id 1"), EXIT_BUG),
        (QueryError("query refused", 62), EXIT_FAILED),
        (FetchError("provider said 401"), EXIT_FAILED),
        (Bug("oops"), EXIT_BUG),
    ],
)
def test_each_class_gets_its_exit_code(error: Exception, code: int, tmp_path: Path) -> None:
    assert exit_code_for(error) == code
    app = typer.Typer(cls=ErrorMappingGroup)

    @app.command()
    def run() -> None:
        raise error

    @app.command()
    def other() -> None:  # two commands: "run" is a subcommand, as in spendstream's CLI
        pass

    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit)  # no traceback escaped
    [said] = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert str(error) in said
    if isinstance(error, UnavailableError):
        assert "unavailable: nothing was changed; retry in" in said
    if code == EXIT_BUG and not isinstance(error, ApiError):
        error_id = said.split("error id ")[1].split()[0]
        [logged] = [line for line in result.output.splitlines() if "unexpected error" in line]
        assert error_id in logged and "Traceback" in logged


def test_usage_errors_keep_clicks_code() -> None:
    from spendstream.cli.root import app

    result = CliRunner().invoke(app, ["report", "--no-such-option"])
    assert result.exit_code == EXIT_USAGE


class BuggyReader:
    """Raises what no mapping knows: a bug planted in the real application."""

    def query(self, sql: str, parameters: dict[str, object] | None = None) -> QueryResult:
        raise KeyError("forced bug")


def test_a_forced_bug_in_the_real_api_answers_500_with_the_id_it_logs(
    tmp_path: Path,
    chdb_path: Path,
    ledger_client: Client,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no spendstream.toml of the checkout's
    settings = load_settings(None, clickhouse={"dsn": f"chdb://{chdb_path}"})
    deps = standard_deps(settings, load_alerting(settings), default_pricer(), reader=BuggyReader())
    try:
        _, secret = deps.tokens.create("bug-hunter", Role.VIEWER)
        configure_logging("info", "json")
        capsys.readouterr()
        with TestClient(create_api(deps), base_url="http://localhost") as api:
            answer = api.get("/api/v1/spend", headers={"Authorization": f"Bearer {secret}"})
    finally:
        deps.tokens.client.close()  # chDB: one data directory per process at a time
    assert answer.status_code == 500, answer.text
    error_id = answer.json()["error_id"]
    [logged] = [line for line in capsys.readouterr().err.splitlines() if error_id in line]
    assert '"path": "/api/v1/spend"' in logged and "KeyError: 'forced bug'" in logged
    assert secret not in logged


class UnavailableAuthenticator:
    def authenticate(self, request: object) -> None:
        raise StorageUnavailable("ClickHouse unavailable: no connection or no answer in time")


def test_a_dashboard_page_whose_session_cannot_be_checked_says_storage_is_unavailable() -> None:
    app = FastAPI()
    app.state.authenticator = UnavailableAuthenticator()
    app.include_router(dashboard_router())
    install_error_mapping(app)
    with TestClient(app) as pages:
        answer = pages.get("/budgets", cookies={SESSION_COOKIE: "sst_x"}, follow_redirects=False)
    assert answer.status_code == 503
    assert "Storage unavailable, retrying in 5 s" in answer.text
    assert f'http-equiv="refresh" content="{answer.headers["Retry-After"]}"' in answer.text
    assert (
        "<script" not in answer.text
        and "script-src 'self'" in answer.headers["Content-Security-Policy"]
    )
