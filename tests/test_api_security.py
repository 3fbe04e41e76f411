"""Hostile requests against a real worker's API: each is refused, nothing changes, and the
worker keeps consuming. Plus what each role may see, and team scoping to the last digit."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.support.api_env import ApiEnv, start_env, team_events
from tests.support.hostile import hostile
from tests.support.hostile_http import raw_http, smuggling_request
from tests.support.worker import wait_until

pytestmark = pytest.mark.integration

# A quota (never reached) so the worker also mounts admission and overrides: the OpenAPI
# walk below then covers POST /admit and POST /quotas/overrides too.
QUOTA = """
[[quotas]]
name = "alpha-cap"
scope = { team = "alpha" }
limit = "1000000"
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, migrated_template: Path) -> Iterator[ApiEnv]:
    yield from start_env(tmp_path_factory.mktemp("api"), migrated_template, QUOTA)


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
        assert response.headers["x-content-type-options"] == "nosniff", what
    # Metrics behind a token by default, from loopback too; health stays open.
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


def test_every_documented_route_refuses_without_a_token(env: ApiEnv) -> None:
    """Each route in the OpenAPI document (the worker's whole API: tokens, SQL, budgets,
    ingest, insights, quotas, reconciliation, …) answers 401 to a request without a token."""
    document = env.call("GET", "/openapi.json", token=env.tokens["admin"]).json()
    routes = [
        (method.upper(), path.removeprefix("/api/v1"))
        for path, operations in document["paths"].items()
        for method in operations
    ]
    assert len(routes) >= 15
    for route in (
        ("GET", "/tokens"),
        ("POST", "/tokens"),
        ("DELETE", "/tokens/{name_or_id}"),
        ("POST", "/sql"),
        ("GET", "/budgets"),
        ("POST", "/admit"),
        ("POST", "/quotas/overrides"),
    ):
        assert route in routes, route
    for index, (method, path) in enumerate(routes):
        concrete = path.replace("{", "").replace("}", "")  # path parameters: any value
        # A fresh loopback address every few requests, so the failure brake never answers 429.
        source = f"127.0.{10 + index // 5}.{1 + index % 5}"
        answer = env.call(method, concrete, source=source, json={} if method != "GET" else None)
        assert answer.status_code == 401, (method, path, answer.status_code, answer.text)


def test_repeated_failures_are_slowed_down_per_client(env: ApiEnv) -> None:
    for _ in range(10):  # requests without credentials are no guesses: they count for nothing
        assert env.call("GET", "/spend", source="127.0.0.3").status_code == 401
    for _ in range(10):
        assert env.call("GET", "/spend", token="nope", source="127.0.0.3").status_code == 401
    throttled = env.call("GET", "/spend", token="nope", source="127.0.0.3")
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    # Guessing is braked; a valid token from the same address is not (docs/security.md).
    assert (
        env.call("GET", "/spend", token=env.tokens["admin"], source="127.0.0.3").status_code == 200
    )
    assert env.call("GET", "/spend", token=env.tokens["admin"]).status_code == 200
    # No client picks its bucket with X-Forwarded-For (no proxy is configured): the throttled
    # one stays throttled, and naming it from another address throttles nobody else.
    escape = {"X-Forwarded-For": "203.0.113.7"}
    assert env.call("GET", "/spend", "nope", "127.0.0.3", headers=escape).status_code == 429
    blame = {"X-Forwarded-For": "127.0.0.3"}
    assert env.call("GET", "/spend", "nope", "127.0.0.4", headers=blame).status_code == 401


def test_smuggled_requests_are_refused_over_a_raw_socket(env: ApiEnv) -> None:
    """Content-Length and Transfer-Encoding together: one 400 and the connection closes, so
    the request hidden after the last chunk is never served."""
    port = int(env.worker.url.rsplit(":", 1)[1])
    for path in ("/api/v1/sql", "/api/v1/events", "/healthz"):
        assert raw_http(port, smuggling_request(port, path, env.tokens["admin"])) == [400], path


def test_json_answers_carry_the_security_headers(env: ApiEnv) -> None:
    answer = env.call("GET", "/spend", token=env.tokens["viewer-all"])
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    cookie = {"spendstream_session": env.tokens["admin"]}
    # The cookie and the CSRF header, with an empty Authorization beside them: allowed.
    made = env.call(
        "POST",
        "/tokens",
        json={"name": "csrf-ok", "role": "viewer", "teams": ["beta"]},
        cookies=cookie,
        headers={"Authorization": "", "X-Spendstream-CSRF": "1"},
    )
    assert made.status_code == 201, made.text


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
    # The worker mounts the other parts' routers: HTTP ingest (service) and reconciliation.
    event = team_events("beta", 1, start=5000)[0]
    ingest = env.call(
        "POST",
        "/events",
        content=event.to_json_bytes(),
        token=t["service"],
        headers={"Content-Type": "application/json"},
    )
    assert ingest.status_code == 200, ingest.text
    env.published += 1
    env.worker.wait_for_ledger_count(env.published)
    assert (
        env.call(
            "POST",
            "/events",
            content=b"{}",
            token=t["viewer-all"],
            headers={"Content-Type": "application/json"},
        ).status_code
        == 403
    )
    variance = env.call("GET", "/reconcile/variance", token=t["viewer-alpha"])
    assert variance.status_code == 200, variance.text
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
