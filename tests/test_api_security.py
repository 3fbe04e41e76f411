"""Hostile requests against a real worker's API: each is refused, nothing changes, and the
worker keeps consuming. Plus what each role may see, and team scoping to the last digit."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.support.api_env import ApiEnv, start_env, team_events
from tests.support.worker import wait_until

pytestmark = pytest.mark.integration

SQL_ATTACKS = [
    "SELECT * FROM file('/etc/hostname', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'a String')",
    "SELECT * FROM remote('127.0.0.1', system.one)",
    "SELECT 1 SETTINGS readonly = 0",
    "SELECT 1 SETTINGS max_execution_time = 1000",
    "SET readonly = 0",
    "INSERT INTO ledger (event_id) VALUES ('forged')",
    "DROP TABLE ledger",
    "TRUNCATE TABLE auth_tokens",
    "ALTER TABLE ledger DELETE WHERE 1",
    "CREATE TABLE stolen (a String) ENGINE = Memory",
    "SYSTEM SHUTDOWN",
    "SYSTEM DROP DNS CACHE",
    "SELECT count() FROM numbers(10000000000)",
    "SELECT sum(sipHash64(number)) FROM numbers(10000000000)",
    "SELECT sum(sipHash64(number)) FROM system.numbers",
    "SELECT number FROM system.numbers LIMIT 10000000",
    "SELECT 1; DROP TABLE ledger",
    "CREATE USER intruder IDENTIFIED WITH no_password",
]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    yield from start_env(tmp_path_factory.mktemp("api"))


def state(env: ApiEnv) -> list[Any]:
    """Everything a hostile request could change."""
    q = env.worker.query
    return [
        q("SELECT count(), sum(cost_total) FROM ledger FINAL").rows,
        q("SELECT name, revoked_at FROM auth_tokens FINAL ORDER BY name").rows,
        q("SELECT budget, until, created_by FROM alert_silences FINAL ORDER BY budget").rows,
        q("SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name").rows,
    ]


def team_total(env: ApiEnv, team: str) -> Decimal:
    result = env.worker.query(
        "SELECT sum(cost_total) FROM ledger FINAL WHERE team = {team:String}", {"team": team}
    )
    return Decimal(str(result.rows[0][0]))


def hostile(env: ApiEnv) -> list[tuple[str, int | tuple[int, ...], dict[str, Any]]]:
    """(what, allowed refusal codes, request) — at least 30."""
    t = env.tokens
    wrong = f"sst_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"
    expired = env.create_token("expired", "admin", [], expires="1s")
    revoked = env.create_token("revoked", "admin", [])
    env.worker.api().request("DELETE", "/tokens/revoked")
    time.sleep(1.5)  # `expired` is now past its expiry; the auth cache (0.5 s) has turned over
    anon = {"source": "127.0.0.2"}  # auth failures from their own address (the brake counts)
    silence = {"budget": "beta-month", "duration": "1h"}
    cases: list[tuple[str, int | tuple[int, ...], dict[str, Any]]] = [
        ("no token", 401, {"method": "GET", "path": "/spend", **anon}),
        (
            "no token for the OpenAPI document",
            401,
            {"method": "GET", "path": "/openapi.json", **anon},
        ),
        ("wrong token", 401, {"method": "GET", "path": "/spend", "token": wrong, **anon}),
        ("malformed token", 401, {"method": "GET", "path": "/spend", "token": "x", **anon}),
        ("expired token", 401, {"method": "GET", "path": "/spend", "token": expired, **anon}),
        ("revoked token", 401, {"method": "GET", "path": "/spend", "token": revoked, **anon}),
        (
            "basic auth",
            401,
            {"method": "GET", "path": "/spend", "headers": {"Authorization": "Basic YTpi"}, **anon},
        ),
        (
            "forged cookie",
            401,
            {"method": "GET", "path": "/spend", "cookies": {"spendstream_session": wrong}, **anon},
        ),
        (
            "no token for silences",
            401,
            {"method": "POST", "path": "/silences", "json": silence, **anon},
        ),
        (
            "viewer silences",
            403,
            {
                "method": "POST",
                "path": "/silences",
                "json": {**silence, "budget": "alpha-month"},
                "token": t["viewer-alpha"],
            },
        ),
        ("service reads spend", 403, {"method": "GET", "path": "/spend", "token": t["service"]}),
        (
            "viewer runs SQL",
            403,
            {
                "method": "POST",
                "path": "/sql",
                "json": {"query": "SELECT 1"},
                "token": t["viewer-all"],
            },
        ),
        (
            "operator creates a token",
            403,
            {
                "method": "POST",
                "path": "/tokens",
                "json": {"name": "x", "role": "viewer"},
                "token": t["operator-alpha"],
            },
        ),
        (
            "viewer lists tokens",
            403,
            {"method": "GET", "path": "/tokens", "token": t["viewer-all"]},
        ),
        (
            "team A filters team B",
            403,
            {
                "method": "GET",
                "path": "/spend",
                "params": {"filter": "team=beta"},
                "token": t["viewer-alpha"],
            },
        ),
        (
            "team A filters A and B",
            403,
            {
                "method": "GET",
                "path": "/spend",
                "params": {"filter": ["team=alpha", "team=beta"], "by": "app"},
                "token": t["viewer-alpha"],
            },
        ),
        (
            "team A silences B",
            403,
            {"method": "POST", "path": "/silences", "json": silence, "token": t["operator-alpha"]},
        ),
        (
            "team A reads B's alerts",
            403,
            {
                "method": "GET",
                "path": "/alerts",
                "params": {"budget": "beta-month"},
                "token": t["viewer-alpha"],
            },
        ),
        (
            "team admin runs free SQL",
            403,
            {
                "method": "POST",
                "path": "/sql",
                "json": {"query": "SELECT 1"},
                "token": t["admin-alpha"],
            },
        ),
        (
            "team admin mints an all-teams token",
            403,
            {
                "method": "POST",
                "path": "/tokens",
                "json": {"name": "esc1", "role": "viewer"},
                "token": t["admin-alpha"],
            },
        ),
        (
            "team admin mints a team-B token",
            403,
            {
                "method": "POST",
                "path": "/tokens",
                "json": {"name": "esc2", "role": "admin", "teams": ["beta"]},
                "token": t["admin-alpha"],
            },
        ),
        (
            "team admin revokes the global admin",
            403,
            {"method": "DELETE", "path": "/tokens/local-admin", "token": t["admin-alpha"]},
        ),
        (
            "author in the body",
            400,
            {
                "method": "POST",
                "path": "/silences",
                "json": {"budget": "alpha-month", "by": "ceo"},
                "token": t["operator-alpha"],
            },
        ),
        (
            "form-encoded body",
            415,
            {"method": "POST", "path": "/sql", "data": {"query": "SELECT 1"}, "token": t["admin"]},
        ),
        (
            "text/plain cross-site POST",
            415,
            {
                "method": "POST",
                "path": "/silences",
                "content": b'{"budget":"alpha-month"}',
                "headers": {"Content-Type": "text/plain", "Origin": "https://evil.example"},
            },
        ),
        (
            "cross-origin JSON POST",
            403,
            {
                "method": "POST",
                "path": "/silences",
                "json": {"budget": "alpha-month"},
                "headers": {"Origin": "https://evil.example"},
                "token": t["admin"],
            },
        ),
        (
            "oversized body",
            413,
            {
                "method": "POST",
                "path": "/sql",
                "json": {"query": "SELECT '" + "x" * 100_000 + "'"},
                "token": t["admin"],
            },
        ),
        (
            "oversized chunked body",
            413,
            {
                "method": "POST",
                "path": "/sql",
                "content": iter([b'{"query": "SELECT \'', b"x" * 100_000, b"'\"}"]),
                "headers": {"Content-Type": "application/json"},
                "token": t["admin"],
            },
        ),
        (
            "path traversal in an audit name",
            (400, 404),
            {"method": "GET", "path": "/audits/..%2F..%2Fetc%2Fpasswd", "token": t["admin"]},
        ),
        (
            "path traversal in a token name",
            (400, 404),
            {"method": "DELETE", "path": "/tokens/..%2F..%2Fadmin", "token": t["admin"]},
        ),
        (
            "traversal as a group-by tag",
            400,
            {
                "method": "GET",
                "path": "/spend",
                "params": {"by": "../../etc/passwd"},
                "token": t["admin"],
            },
        ),
        (
            "SQL as a group-by tag",
            400,
            {
                "method": "GET",
                "path": "/spend",
                "params": {"by": "team) OR (1=1"},
                "token": t["viewer-alpha"],
            },
        ),
        (
            "SQL as an audit tag",
            400,
            {
                "method": "GET",
                "path": "/audits/tag_coverage",
                "params": {"require": "x'] OR 1 --"},
                "token": t["viewer-alpha"],
            },
        ),
        (
            "bad time",
            400,
            {
                "method": "GET",
                "path": "/spend",
                "params": {"since": "yesterday; DROP"},
                "token": t["admin"],
            },
        ),
    ]
    for query in SQL_ATTACKS:
        cases.append(
            (
                f"SQL: {query[:40]}",
                400,
                {"method": "POST", "path": "/sql", "json": {"query": query}, "token": t["admin"]},
            )
        )
    return cases


def test_hostile_requests_are_refused_and_change_nothing(env: ApiEnv) -> None:
    cases = hostile(env)
    assert len(cases) >= 30
    before = state(env)
    for what, allowed, request in cases:
        method, path = request.pop("method"), request.pop("path")
        response = env.call(method, path, **request)
        codes = allowed if isinstance(allowed, tuple) else (allowed,)
        assert response.status_code in codes, (what, response.status_code, response.text)
        assert response.json()["detail"], what  # the refusal says why
        assert "sst_" not in response.text, what
    # Metrics behind a token (api.metrics = "token"); health stays open.
    assert env.root("/metrics", source="127.0.0.2").status_code == 401
    assert env.root("/healthz", source="127.0.0.2").json() == {"status": "ok"}
    # A cross-origin preflight gets no CORS permission.
    preflight = env.call(
        "OPTIONS",
        "/silences",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code >= 400
    assert not [h for h in preflight.headers if h.lower().startswith("access-control-")]
    assert state(env) == before
    # The worker still consumes.
    env.publish(team_events("alpha", 5, start=1000))
    env.worker.wait_for_ledger_count(env.published)
    log = env.worker.log_path.read_text()
    assert "authentication failed" in log
    for secret in env.tokens.values():
        assert secret not in log


def test_repeated_failures_are_slowed_down_per_client(env: ApiEnv) -> None:
    for _ in range(10):
        assert env.call("GET", "/spend", token="nope", source="127.0.0.3").status_code == 401
    throttled = env.call("GET", "/spend", token=env.tokens["admin"], source="127.0.0.3")
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    assert env.call("GET", "/spend", token=env.tokens["admin"]).status_code == 200


def test_team_scoping_gives_exactly_the_teams_totals(env: ApiEnv) -> None:
    alpha, beta = team_total(env, "alpha"), team_total(env, "beta")
    api = env.worker.api
    spend = api(env.tokens["viewer-alpha"]).table("/spend", {"by": "team"})
    assert {r[0]: Decimal(r[1]) for r in spend.rows} == {"alpha": alpha}
    by_app = api(env.tokens["viewer-alpha"]).table("/spend", {"by": ["app", "model"]})
    assert sum(Decimal(r[2]) for r in by_app.rows) == alpha
    assert all(r[0].startswith("alpha-") for r in by_app.rows)
    drill = api(env.tokens["viewer-alpha"]).table(
        "/spend", {"by": "user", "filter": "app=beta-app-1"}
    )
    assert drill.rows == []
    for name in ("cost_per_request", "cost_per_user", "cost_per_model", "unallocated_spend"):
        audit = api(env.tokens["viewer-alpha"]).table(f"/audits/{name}", {"since": "1d"})
        if name == "cost_per_request":
            assert {r[1] for r in audit.rows} == {"alpha"}
            assert sum(Decimal(r[5]) for r in audit.rows) == alpha
        if name == "unallocated_spend":
            assert audit.rows == []
    everyone = api(env.tokens["viewer-all"]).table("/spend", {"by": "team"})
    assert {r[0]: Decimal(r[1]) for r in everyone.rows} == {"alpha": alpha, "beta": beta}
    hourly = api(env.tokens["viewer-all"]).table("/spend", {"by": "team", "granularity": "hour"})
    assert hourly.columns[:2] == ["period", "team"]
    assert sum(Decimal(r[2]) for r in hourly.rows) == alpha + beta
    status = api(env.tokens["viewer-alpha"]).table("/budgets/status")
    assert [r[0] for r in status.rows] == ["alpha-month"] and Decimal(status.rows[0][2]) == alpha


def test_each_role_sees_what_it_should(env: ApiEnv) -> None:
    t = env.tokens
    cookie = env.call("GET", "/budgets", cookies={"spendstream_session": t["viewer-all"]})
    assert cookie.status_code == 200  # the dashboard's HttpOnly session cookie
    metrics = env.root("/metrics", token=t["viewer-all"])
    assert metrics.status_code == 200 and "spendstream_events_in" in metrics.text
    document = env.call("GET", "/openapi.json", token=t["service"]).json()
    assert document["info"]["title"] == "spendstream" and "/api/v1/spend" in document["paths"]
    for role in ("viewer-all", "operator-alpha", "admin"):
        for path in ("/spend", "/budgets", "/budgets/status", "/alerts", "/audits", "/prices"):
            assert env.call("GET", path, token=t[role]).status_code == 200, (role, path)
    done = env.call(
        "POST",
        "/silences",
        json={"budget": "alpha-month", "duration": "2h"},
        token=t["operator-alpha"],
    )
    assert done.status_code == 200, done.text
    author = env.worker.query(
        "SELECT created_by FROM alert_silences FINAL WHERE budget = 'alpha-month'"
    )
    assert author.rows == [["operator-alpha"]]
    listed = env.call("GET", "/tokens", token=t["admin"])
    assert listed.status_code == 200
    assert "sst_" not in listed.text and "sha256" not in listed.text
    names = {row["name"] for row in listed.json()}
    assert {"viewer-alpha", "local-admin", "service"} <= names
    scoped = env.call("GET", "/tokens", token=t["admin-alpha"]).json()
    assert {row["name"] for row in scoped} <= {"viewer-alpha", "operator-alpha", "admin-alpha"}
    made = env.call(
        "POST",
        "/tokens",
        json={"name": "alpha-ci", "role": "viewer", "teams": ["alpha"]},
        token=t["admin-alpha"],
    )
    assert made.status_code == 201 and made.json()["token"].startswith("sst_")
    wait_until(
        lambda: env.call("GET", "/spend", token=made.json()["token"]).status_code == 200,
        10,
        "the new token works",
    )
