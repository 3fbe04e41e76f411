"""Every parser of a request body keeps the guard's JSON bounds (spendstream.jsonbody), whatever
the body's type says: a document nested 100,000 levels deep is a 400 naming the bound, never a
RecursionError (a 500). Unit tests: an in-process app, no storage."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from spendstream.api.errors import install_error_mapping
from spendstream.api.routes_agents import agents_router
from spendstream.auth.roles import Principal, Role
from spendstream.ingest.otlp import OtlpDecodeError, decode_spans
from tests.support.http_app import TokenAuthenticator

DEEP = b"[" * 100_000
TOKENS = {"admin": Principal("root", Role.ADMIN)}


@pytest.fixture
def client() -> Iterator[TestClient]:
    stored: list[Any] = []
    app = FastAPI()
    app.state.authenticator = TokenAuthenticator(TOKENS)
    install_error_mapping(app)
    app.include_router(agents_router(None, lambda rows: stored.append(rows) or len(rows)))  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as served:
        yield served


@pytest.mark.parametrize(
    "media", ["application/x-ndjson", "application/jsonl", "application/json", "text/plain"]
)
def test_revenue_keeps_the_json_bounds_whatever_its_type(client: TestClient, media: str) -> None:
    answer = client.post(
        "/revenue", content=DEEP, headers={"Authorization": "Bearer admin", "Content-Type": media}
    )
    assert answer.status_code == 400, answer.text
    assert "nest at most 200 levels" in answer.json()["detail"]


def test_revenue_still_imports_json(client: TestClient) -> None:
    row = {"customer": "acme", "period_start": "2026-10-01", "period_end": "2026-11-01"}
    answer = client.post(
        "/revenue",
        json=[{**row, "amount": "1.5"}],
        headers={"Authorization": "Bearer admin", "Content-Type": "application/x-ndjson"},
    )
    assert answer.status_code == 200 and answer.json() == {"stored": 1}


def test_an_otlp_json_export_keeps_the_bounds() -> None:
    with pytest.raises(OtlpDecodeError, match="nest at most 200 levels"):
        list(decode_spans(b'{"resourceSpans":' + DEEP, "otlp_json"))
