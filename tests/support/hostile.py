"""The hostile requests the API security tests send: each must be refused."""

from __future__ import annotations

import secrets
import time

from tests.support.api_env import ApiEnv
from tests.support.hostile_http import Case, header_attacks, input_attacks

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


def hostile(env: ApiEnv) -> list[Case]:
    """(what, allowed refusal codes, request) — at least 30."""
    t = env.tokens
    wrong = f"sst_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"
    expired = env.create_token("expired", "admin", [], expires="1s")
    revoked = env.create_token("revoked", "admin", [])
    env.worker.api().request("DELETE", "/tokens/revoked")
    time.sleep(1.5)  # `expired` is now past its expiry; the auth cache (0.5 s) has turned over
    anon = {"source": "127.0.0.2"}  # auth failures from their own address (the brake counts)
    silence = {"budget": "beta-month", "duration": "1h"}
    cases: list[Case] = [
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
    return cases + input_attacks(env) + header_attacks(env)
