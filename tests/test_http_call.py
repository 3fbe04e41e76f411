"""The CLI's API client on the standard library (``sinks.http_call``): the same requests as the
httpx it replaced (query strings and JSON bodies byte for byte), and every answer, refusal,
outage and silence turned into the same error classes against a real FastAPI server."""

from __future__ import annotations

import math
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import PlainTextResponse

from spendstream.errors import UnavailableError
from spendstream.sinks.access import ApiClient, ApiError, ApiServerError, ApiUnavailableError
from spendstream.sinks.http_call import NoAnswer, json_body, query_text
from tests.support.http_app import ServedApp, TokenAuthenticator

PARAMS: list[dict[str, Any]] = [
    {},
    {"by": ["team", "app"], "since": "2026-11-01T00:00:00.000+00:00", "limit": 50},
    {"unpriced": True, "currency": "EUR", "flag": False, "nothing": None},
    {"require": [], "state": ("open", "acknowledged")},
    {"text": "a b&c=d/é?#%", "ratio": 0.25, "n": -3},
]
BODIES: list[Any] = [
    {"query": "SELECT 1", "parameters": {}},
    {"name": "ünïcode ✓", "teams": ["a", "b"], "expires": None, "n": 1.5, "ok": True},
    ["x", 1, None, {"nested": [1, 2, {"deep": "é"}]}],
]


@pytest.mark.parametrize("params", PARAMS)
def test_query_strings_are_httpxs(params: dict[str, Any]) -> None:
    assert query_text(params) == str(httpx.QueryParams(params))


@pytest.mark.parametrize("body", BODIES)
def test_json_bodies_are_httpxs(body: Any) -> None:
    assert json_body(body) == httpx.Request("POST", "http://x/", json=body).content


def test_nan_is_refused_as_httpx_refuses_it() -> None:
    with pytest.raises(ValueError):
        json_body({"x": math.nan})
    with pytest.raises(ValueError):
        httpx.Request("POST", "http://x/", json={"x": math.nan})


def echo_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    @router.api_route("/echo/{name}", methods=["GET", "POST", "DELETE"])
    async def echo(name: str, request: Request) -> dict[str, Any]:
        return {
            "method": request.method,
            "name": name,
            "query": list(request.query_params.multi_items()),
            "body": (await request.body()).decode(),
            "content_type": request.headers.get("content-type"),
            "authorization": request.headers.get("authorization"),
        }

    @router.get("/down")
    async def down() -> None:
        raise UnavailableError("ClickHouse is restarting", retry_after_s=7)

    @router.get("/bug")
    async def bug() -> None:
        raise KeyError("a bug")

    @router.get("/refused")
    async def refused() -> None:
        raise HTTPException(status_code=403, detail="lacks the admin permission")

    @router.get("/who")
    async def who() -> None:
        raise HTTPException(status_code=401, detail="missing or unknown bearer token")

    @router.get("/text")
    async def text() -> PlainTextResponse:
        return PlainTextResponse("proxy says no", status_code=502)

    return router


@pytest.fixture(scope="module")
def served() -> Iterator[ServedApp]:
    with ServedApp(TokenAuthenticator({}), echo_router()) as app:
        yield app


def test_requests_arrive_as_sent(served: ServedApp) -> None:
    api = ApiClient(served.url, "secret-token", timeout_s=30)
    got = api.get("/echo/a b", {"by": ["team", "app"], "unpriced": False, "none": None})
    assert got["method"] == "GET" and got["name"] == "a b"
    assert got["query"] == [["by", "team"], ["by", "app"], ["unpriced", "false"], ["none", ""]]
    assert got["authorization"] == "Bearer secret-token" and got["body"] == ""
    posted = api.post("/echo/x", {"query": "SELECT 'é'", "parameters": {}})
    assert posted["body"] == '{"query":"SELECT \'é\'","parameters":{}}'
    assert posted["content_type"] == "application/json"
    assert api.request("DELETE", "/echo/gone")["method"] == "DELETE"
    assert ApiClient(served.url, None).get("/echo/x")["authorization"] is None


def test_answers_become_the_same_errors(served: ServedApp) -> None:
    api = ApiClient(served.url, "t", timeout_s=30)
    with pytest.raises(ApiUnavailableError) as down:
        api.get("/down")
    assert down.value.status == 503 and down.value.retry_after_s == 7
    assert "ClickHouse is restarting" in down.value.detail
    with pytest.raises(ApiServerError) as bug:
        api.get("/bug")
    assert bug.value.status == 500
    with pytest.raises(ApiError) as refused:
        api.get("/refused")
    assert type(refused.value) is ApiError
    assert (refused.value.status, refused.value.detail) == (403, "lacks the admin permission")
    with pytest.raises(ApiError) as anonymous:
        ApiClient(served.url, None).get("/who")
    assert anonymous.value.detail.endswith("(no token found: set SPENDSTREAM_TOKEN or [api] token)")
    with pytest.raises(ApiUnavailableError) as text:
        api.get("/text")
    assert (text.value.status, text.value.detail) == (502, "proxy says no")


def silent_server(reply: bytes | None) -> tuple[int, threading.Event]:
    """A TCP server that accepts one connection and sends ``reply`` (None: nothing) and then
    holds the connection until told to stop."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        if reply is not None:
            connection.sendall(reply)
            connection.close()
        stop.wait(30)
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], stop


@pytest.mark.parametrize(
    ("reply", "timeout_s", "named"),
    [(None, 0.5, "TimeoutError"), (b"SSH-2.0-OpenSSH_9.6\r\n", 5.0, "BadStatusLine")],
)
def test_silence_or_an_answer_that_is_not_http_is_unavailable(
    reply: bytes | None, timeout_s: float, named: str
) -> None:
    port, stop = silent_server(reply)
    try:
        with pytest.raises(ApiUnavailableError) as nothing:
            ApiClient(f"http://127.0.0.1:{port}", "t", timeout_s=timeout_s).get("/spend")
    finally:
        stop.set()
    assert nothing.value.status == 0 and f"did not answer ({named})" in nothing.value.detail
    assert isinstance(nothing.value.__cause__, NoAnswer)
