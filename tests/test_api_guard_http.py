"""The request guard and the server options over real HTTP (uvicorn on loopback, as the worker
serves the API): request smuggling over a raw socket, Host names, security headers on every
answer, bounded JSON bodies, and proxy headers believed only from configured proxies."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from spendstream.api.guard import RequestGuard
from spendstream.api.server import ApiServer
from spendstream.config.network import allowed_host_names
from spendstream.embedded import free_port
from tests.support.hostile_http import DEEP_JSON, raw_http


def guarded_app() -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/client")
    def client(request: Request) -> dict[str, Any]:
        assert request.client is not None
        return {"host": request.client.host, "scheme": request.url.scheme}

    @app.post("/echo")
    def echo(body: dict[str, Any]) -> dict[str, Any]:
        return body

    app.add_middleware(
        RequestGuard,
        max_body_bytes=1024 * 1024,
        allowed_hosts=allowed_host_names(["spend.example.com"], "127.0.0.1"),
    )
    return app


@contextmanager
def served(trusted_proxies: Sequence[str] = ()) -> Iterator[int]:
    port = free_port()
    server = ApiServer(guarded_app(), "127.0.0.1", port, trusted_proxies).start()
    try:
        yield port
    finally:
        server.stop()


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with served() as port:
        yield port


def test_a_request_framed_two_ways_is_refused_and_ends_the_connection(port: int) -> None:
    host = f"Host: 127.0.0.1:{port}\r\n"
    hidden = f"GET /client HTTP/1.1\r\n{host}Connection: close\r\n\r\n"
    smuggled = (
        f"POST /echo HTTP/1.1\r\n{host}Content-Type: application/json\r\n"
        f"Content-Length: {5 + len(hidden)}\r\nTransfer-Encoding: chunked\r\n\r\n"
        f"0\r\n\r\n{hidden}"
    ).encode()
    assert raw_http(port, smuggled) == [400]  # one answer: the hidden GET is never served
    # The same two requests framed honestly: both answered (the check above can see two).
    honest = (
        f"POST /echo HTTP/1.1\r\n{host}Content-Type: application/json\r\n"
        f"Transfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n{hidden}"
    ).encode()
    assert raw_http(port, honest) == [200, 200]


def test_two_host_headers_are_refused(port: int) -> None:
    request = (
        f"GET /client HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: evil.example\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    assert raw_http(port, request) == [400]


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("evil.example", 400),
        ("127.0.0.1.nip.example", 400),
        ("spend.example.com", 200),
        ("SPEND.example.com:443", 200),
        ("localhost", 200),
        ("[::1]:8080", 200),
    ],
)
def test_only_configured_hosts_are_answered(port: int, host: str, status: int) -> None:
    answer = httpx.get(f"http://127.0.0.1:{port}/client", headers={"Host": host})
    assert answer.status_code == status, answer.text
    if status == 400:
        assert "allowed_hosts" in answer.json()["detail"]
    # Health answers any host: orchestrators probe it by address.
    health = httpx.get(f"http://127.0.0.1:{port}/healthz", headers={"Host": host})
    assert health.status_code == 200


def test_every_answer_carries_the_security_headers(port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    answers = [
        httpx.get(f"{base}/client"),
        httpx.get(f"{base}/nowhere"),  # 404
        httpx.get(f"{base}/client", headers={"Host": "evil.example"}),  # guard's 400
        httpx.post(f"{base}/echo", content=b"x=1", headers={"Content-Type": "text/plain"}),
        httpx.post(f"{base}/echo", json=[1]),  # validation error
    ]
    assert [a.status_code for a in answers] == [200, 404, 400, 415, 422]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["cross-origin-resource-policy"] == "same-origin"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (DEEP_JSON, "recursion limit exceeded"),
        (b'{"n": ' + b"9" * 5_000 + b"}", "number out of range"),
        (b'{"n": Infinity}', "expected value"),
    ],
)
def test_json_a_parser_chokes_on_is_a_400_naming_it(port: int, body: bytes, named: str) -> None:
    answer = httpx.post(
        f"http://127.0.0.1:{port}/echo",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert named in answer.json()["detail"]
    fine = httpx.post(f"http://127.0.0.1:{port}/echo", json={"n": int("9" * 4_000)})
    assert fine.status_code == 200 and fine.json()["n"] == int("9" * 4_000)


def test_forwarded_headers_are_believed_only_from_configured_proxies(port: int) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    # Not configured (the default): a local client cannot choose the address it is counted as.
    direct = httpx.get(f"http://127.0.0.1:{port}/client", headers=forwarded).json()
    assert direct == {"host": "127.0.0.1", "scheme": "http"}
    with served(trusted_proxies=["127.0.0.0/8"]) as proxied:
        via = httpx.get(f"http://127.0.0.1:{proxied}/client", headers=forwarded).json()
        assert via == {"host": "203.0.113.9", "scheme": "https"}
    with served(trusted_proxies=["10.0.0.1"]) as elsewhere:
        other = httpx.get(f"http://127.0.0.1:{elsewhere}/client", headers=forwarded).json()
        assert other == {"host": "127.0.0.1", "scheme": "http"}
