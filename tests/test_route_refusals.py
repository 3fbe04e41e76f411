"""Answers the docs promise, checked before any storage is read: an unknown audit is a 404
(docs/api.md: "nothing by that name"), a what-if change scoped to a team the token may not read
is a 403 (as a filter on it), never a 200 with zero change. Unit tests: in-process apps whose
storage would fail if it were reached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from spendstream.advice.http import advice_router
from spendstream.api.errors import install_error_mapping
from spendstream.api.routes_data import data_router
from spendstream.auth.roles import Principal, Role
from tests.support.http_app import TokenAuthenticator

TOKENS = {
    "viewer": Principal("vic", Role.VIEWER),
    "search": Principal("sam", Role.VIEWER, frozenset({"search"})),
}


class NoStorage:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"storage reached ({name}) before the refusal")


def client(*routers: Any) -> TestClient:
    app = FastAPI()
    app.state.authenticator = TokenAuthenticator(TOKENS)
    install_error_mapping(app)
    for router in routers:
        app.include_router(router)
    return TestClient(app)


def test_an_unknown_audit_is_not_found() -> None:
    api = client(data_router(SimpleNamespace(reader=NoStorage())))  # type: ignore[arg-type]
    answer = api.get("/audits/unknown", headers={"Authorization": "Bearer viewer"})
    assert answer.status_code == 404
    assert "no audit 'unknown'; choose from" in answer.json()["detail"]


def test_a_whatif_on_another_team_is_forbidden() -> None:
    api = client(advice_router(NoStorage(), NoStorage))  # type: ignore[arg-type]
    now = datetime.now(UTC)
    body = {
        "since": (now - timedelta(days=7)).isoformat(),
        "until": now.isoformat(),
        "changes": [
            {"action": "drop", "scope": {"app": "chat"}},
            {"action": "price", "scope": {"team": "support"}, "percent": "-10"},
        ],
    }
    answer = api.post("/api/v1/whatif", json=body, headers={"Authorization": "Bearer search"})
    assert answer.status_code == 403
    assert "may not read team 'support'" in answer.json()["detail"]
