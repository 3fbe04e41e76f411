"""Hostile requests of round 3 (issue 24): bodies a JSON parser chokes on, CSRF through an
empty ``Authorization`` header, DNS rebinding, open redirects, another team's insight, and
request smuggling over a raw socket. Each must get a 4xx."""

from __future__ import annotations

import re
import socket
from typing import Any

from tests.support.api_env import ApiEnv

# (what, allowed refusal codes, request for ApiEnv.call)
Case = tuple[str, int | tuple[int, ...], dict[str, Any]]
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
# As deep as fits the test worker's 64 KiB body limit (ingest's own limit is 5 MiB).
DEEP_SMALL_JSON = b"[" * 30_000 + b"]" * 30_000
HUGE_INTEGER = b'{"name": "n", "role": "viewer", "teams": [], "expires": ' + b"9" * 5_000 + b"}"
JSON = {"Content-Type": "application/json"}
STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


def input_attacks(env: ApiEnv) -> list[Case]:
    """Bodies a JSON parser chokes on (they were 500s): each a 4xx naming the problem."""
    t = env.tokens
    cases: list[Case] = []
    for path, token in (("/events", "service"), ("/sql", "admin"), ("/tokens", "admin")):
        deep = DEEP_JSON if path == "/events" else DEEP_SMALL_JSON
        for what, body in (("deeply nested JSON", deep), ("a 5,000-digit integer", HUGE_INTEGER)):
            cases.append(
                (
                    f"{what} to {path}",
                    400,
                    {
                        "method": "POST",
                        "path": path,
                        "content": body,
                        "headers": JSON,
                        "token": t[token],
                    },
                )
            )
    ndjson = {"Content-Type": "application/x-ndjson"}
    for what, body in (
        ("deep", DEEP_JSON),
        ("huge integer", b'{"input_tokens": ' + b"9" * 5_000 + b"}"),
    ):
        cases.append(
            (
                f"NDJSON event, {what}",
                422,
                {
                    "method": "POST",
                    "path": "/events",
                    "content": body + b"\n",
                    "headers": ndjson,
                    "token": t["service"],
                },
            )
        )
    cases.append(
        (
            "NaN in a JSON body",
            400,
            {
                "method": "POST",
                "path": "/sql",
                "content": b'{"query": NaN}',
                "headers": JSON,
                "token": t["admin"],
            },
        )
    )
    return cases


def header_attacks(env: ApiEnv) -> list[Case]:
    """CSRF through an empty Authorization header, DNS rebinding, an open redirect, another
    team's insight."""
    t = env.tokens
    admin_cookie = {"spendstream_session": t["admin"]}
    return [
        (
            "cookie with an empty Authorization header mints a token (CSRF)",
            403,
            {
                "method": "POST",
                "path": "/tokens",
                "json": {"name": "csrf", "role": "admin"},
                "cookies": admin_cookie,
                "headers": {"Authorization": ""},
            },
        ),
        (
            "cookie with an empty Authorization header revokes a token (CSRF)",
            403,
            {
                "method": "DELETE",
                "path": "/tokens/viewer-alpha",
                "cookies": admin_cookie,
                "headers": {"Authorization": ""},
            },
        ),
        (
            "rebound host name reads spend",
            400,
            {
                "method": "GET",
                "path": "/spend",
                "headers": {"Host": "evil.example"},
                "token": t["admin"],
            },
        ),
        (
            "rebound host name reads metrics",
            400,
            {
                "method": "GET",
                "path": "/metrics",
                "root": True,
                "headers": {"Host": "evil.example:80"},
            },
        ),
        (
            "metrics without a token",
            401,
            {"method": "GET", "path": "/metrics", "root": True, "source": "127.0.0.5"},
        ),
        *(
            (
                f"login redirect to {target!r}",
                400,
                {"method": "GET", "path": "/login", "root": True, "params": {"next": target}},
            )
            for target in (
                "/\t/evil.example",
                "//evil.example",
                "/\\evil.example",
                "https://evil.example",
            )
        ),
        (
            "team A scopes an insight to team B",
            403,
            {
                "method": "GET",
                "path": "/insights/rightsize",
                "params": {"since": "2020-01-01T00:00:00", "scope": "team=beta"},
                "token": t["viewer-alpha"],
            },
        ),
    ]


def raw_http(port: int, request: bytes, timeout_s: float = 10.0) -> list[int]:
    """Send ``request`` bytes on one connection; the status of every answer read until the
    server closes it (or goes quiet for ``timeout_s``)."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as connection:
        connection.sendall(request)
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except TimeoutError:
            pass
    # A status line follows the previous answer's body directly (no line break in between).
    return [int(status) for status in STATUS_LINE.findall(received)]


def smuggling_request(port: int, path: str, token: str) -> bytes:
    """A POST framed both by Content-Length and by chunks; what follows its last chunk is a
    second request (a read of the admin's spend) for a server that frames by chunks."""
    host = f"127.0.0.1:{port}"
    hidden = f"GET /api/v1/spend HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n"
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {5 + len(hidden)}\r\n"
        f"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}"
    ).encode()
