"""Pure units of the dashboard: scope visibility, burn-down accumulation, page shells."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from spendstream.alerts.config import BudgetConfig
from spendstream.auth.roles import Principal, Role
from spendstream.auth.scope import sees_scope
from spendstream.dashboard.burndown import burndown, burndown_sql
from spendstream.dashboard.pages import PAGES, SECURITY_HEADERS, dashboard_router, shell
from spendstream.sinks.access import QueryResult
from spendstream.sinks.audits import render_sql


class Rows:
    """A Reader answering every query with fixed rows (records the SQL, with its bound values
    written as literals)."""

    def __init__(self, rows: list[list[Any]]) -> None:
        self.rows = rows
        self.sql: list[str] = []

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult:
        self.sql.append(render_sql(sql, parameters or {}))
        return QueryResult(["bucket", "spend"], self.rows)


def test_scope_visibility() -> None:
    alpha = Principal("a", Role.VIEWER, frozenset({"alpha"}))
    everyone = Principal("all", Role.VIEWER)
    assert sees_scope(everyone, {}) and sees_scope(everyone, {"team": ("beta",)})
    assert sees_scope(alpha, {"team": ("alpha",), "env": ("prod",)})
    assert not sees_scope(alpha, {})  # all spend includes other teams
    assert not sees_scope(alpha, {"team": ("alpha", "beta")})
    assert not sees_scope(alpha, {"team": ("alph*",)})  # a glob may match another team


def test_burndown_accumulates_exactly_within_the_period() -> None:
    budget = BudgetConfig(
        name="b",
        scope={"team": "alpha"},
        period="month",
        timezone="Europe/Paris",
        limit=Decimal(100),
    )
    reader = Rows([["2026-11-01", Decimal("0.1")], ["2026-11-02", Decimal("0.2")]])
    now = datetime(2026, 11, 15, 12, tzinfo=UTC)
    answer = burndown(reader, budget, now, "team IN {t:Array(String)}", {"t": ["alpha"]})
    assert answer["spend"] == Decimal("0.3")
    assert [p[1] for p in answer["points"]] == [Decimal("0.1"), Decimal("0.3")]
    assert answer["period_start"] == datetime(2026, 10, 31, 23, tzinfo=UTC)  # Paris midnight
    (sql,) = reader.sql
    assert "toStartOfDay(event_time, 'Europe/Paris')" in sql
    assert "team = 'alpha'" in sql and "team IN ['alpha']" in sql
    day = BudgetConfig(name="d", period="day", limit=Decimal(1))
    params: dict[str, object] = {}
    assert "toStartOfHour(event_time, {v0:String})" in burndown_sql(day, now, now, params)
    assert params["v0"] == "UTC"


def test_shells_load_only_packaged_scripts() -> None:
    for path, label, script in PAGES:
        html = shell(label, script, path)
        assert f'<script defer src="/static/{script}.js"></script>' in html
        assert "<script>" not in html and "style=" not in html
    assert "'unsafe-inline'" not in SECURITY_HEADERS["Content-Security-Policy"]


# Each resolves (in Chromium) to another host, or is a dot segment, backslash or control
# character, raw or percent-encoded, that a browser may turn into one.
HOSTILE_NEXT = [
    "/.//evil.example/steal",
    "/a/..//evil.com",
    "/a/../..//evil.com",
    "/%2e//evil.example",
    "/%2E%2e//evil.example",
    "/.%2e/x",
    "/a/./b",
    "/a/..",
    "/a//b",
    "//evil.example",
    "/\\evil.example",
    "/%5cevil.example",
    "/\t/evil.example",
    "/%09/evil.example",
    "/%0a/evil.example",
    "/%00",
    "/x%7f",
    "/a b",
    "https://evil.example",
    "javascript:alert(1)",
    "",
]


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_login_refuses_a_next_that_is_not_a_normalised_path(target: str) -> None:
    app = FastAPI()
    app.include_router(dashboard_router())
    answer = TestClient(app).get("/login", params={"next": target})
    assert answer.status_code == 400, target
    assert "is not a path on this site" in answer.json()["detail"]


@pytest.mark.parametrize("target", ["/", "/budgets", "/explore?by=team&q=a//b", "/runs/", "/a.b"])
def test_login_serves_a_normalised_path(target: str) -> None:
    app = FastAPI()
    app.include_router(dashboard_router())
    assert TestClient(app).get("/login", params={"next": target}).status_code == 200


class Braked:
    """An authenticator whose brake answers 429 (others guessed from this address)."""

    def authenticate(self, request: object) -> None:
        raise HTTPException(429, "too many failed authentications", {"Retry-After": "42"})


def test_a_braked_session_keeps_its_cookie() -> None:
    app = FastAPI()
    app.include_router(dashboard_router())
    app.state.authenticator = Braked()
    client = TestClient(app, cookies={"spendstream_session": "sst_x"})
    answer = client.get("/budgets", follow_redirects=False)
    assert answer.status_code == 429 and answer.headers["retry-after"] == "42"
    assert "set-cookie" not in answer.headers  # not logged out: the session may be valid
    assert "retrying in 42 s" in answer.text
