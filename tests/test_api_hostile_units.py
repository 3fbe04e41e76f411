"""Pure rules behind the hostile-request refusals: host names, framing, bounded JSON, where a
login may send the browser, which credential a request carries, and the config keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import HTTPException
from starlette.requests import Request

from spendstream.api.framing import framing_problem, host_problem, with_security_headers
from spendstream.auth.authenticator import presented_secret
from spendstream.auth.roles import Principal, Role
from spendstream.auth.scope import refuse_foreign_teams
from spendstream.config import ConfigError, load_settings
from spendstream.config.network import allowed_host_names, host_name
from spendstream.dashboard.pages import SAME_SITE_PATH
from spendstream.jsonbody import JsonBodyError, decode_json

LOOPBACK = allowed_host_names([], "127.0.0.1")


def request(headers: dict[str, str], method: str = "POST") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": method, "path": "/", "headers": raw})


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Spend.Example.COM.", "spend.example.com"),
        ("[::1]", "::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("10.0.0.5", "10.0.0.5"),
        ("a:80", None),
        ("http://a", None),
        ("a/b", None),
        ("user@a", None),
        ("a b", None),
        ("", None),
        ("-a", None),
    ],
)
def test_host_names_are_normalised_or_refused(text: str, name: str | None) -> None:
    assert host_name(text) == name


def test_default_hosts_are_the_bind_address_and_loopback() -> None:
    assert allowed_host_names([], "localhost") == {"localhost", "127.0.0.1", "::1"}
    assert allowed_host_names(["spend.example.com"], "0.0.0.0") == frozenset(
        {"spend.example.com", "0.0.0.0", "localhost", "127.0.0.1", "::1"}
    )
    assert allowed_host_names(["*"], "127.0.0.1") is None


@pytest.mark.parametrize(
    "host", ["127.0.0.1:6066", "localhost", "LOCALHOST:1", "[::1]:6066", "127.0.0.1"]
)
def test_loopback_hosts_are_answered(host: str) -> None:
    assert host_problem("/api/v1/spend", {"host": host}, LOOPBACK) is None


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:6066",
        "evil.example",
        "127.0.0.1.evil.example",
        "localhost:6066, evil.example",  # two Host headers, comma-joined by the guard
        "127.0.0.1:6066/x",
        "[::1",
        "",
    ],
)
def test_other_hosts_are_refused_except_for_health(host: str) -> None:
    problem = host_problem("/metrics", {"host": host}, LOOPBACK)
    assert problem is not None and "host" in problem.lower()
    assert host_problem("/healthz", {"host": host}, LOOPBACK) is None
    assert host_problem("/metrics", {"host": host}, None) is None


def test_both_lengths_are_refused() -> None:
    both = {"content-length": "4", "transfer-encoding": "chunked"}
    assert "Content-Length and Transfer-Encoding" in (framing_problem(both) or "")
    assert framing_problem({"transfer-encoding": "chunked"}) is None
    assert framing_problem({"content-length": "4"}) is None


def test_security_headers_keep_what_a_route_set() -> None:
    headers = dict(with_security_headers([(b"cache-control", b"public, max-age=300")]))
    assert headers[b"cache-control"] == b"public, max-age=300"
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert b"frame-ancestors 'none'" in headers[b"content-security-policy"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "recursion limit exceeded"),
        (b'{"n": ' + b"9" * 5_000 + b"}", "number out of range"),
        (b"[NaN]", "expected value"),
        (b'"\\ud800"', "hex escape"),
        (b"\xff", "expected value"),
        (b"", "EOF"),
    ],
)
def test_json_bodies_are_bounded(body: bytes, problem: str) -> None:
    with pytest.raises(JsonBodyError, match=problem) as info:
        decode_json(body)
    assert "200 levels" in str(info.value)


def test_json_within_bounds_decodes() -> None:
    assert decode_json(b"[" * 150 + b"]" * 150) is not None
    assert decode_json(b'{"n": ' + b"9" * 4_000 + b"}")["n"] == int("9" * 4_000)


@pytest.mark.parametrize("target", ["/", "/budgets", "/explore?by=team&since=7d", "/a%2F%2Fb"])
def test_login_goes_to_paths_on_this_site(target: str) -> None:
    assert SAME_SITE_PATH.match(target)


@pytest.mark.parametrize(
    "target",
    [
        "/\t/evil.example",
        "/\n/evil.example",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example",
        "javascript:alert(1)",
        " /x",
        "",
    ],
)
def test_login_never_leaves_the_site(target: str) -> None:
    assert not SAME_SITE_PATH.match(target)


def test_the_cookie_counts_whatever_else_a_request_carries() -> None:
    cookie = {"cookie": "spendstream_session=sst_x"}
    assert presented_secret(request(cookie)) == ("sst_x", True)
    assert presented_secret(request({**cookie, "authorization": ""})) == ("sst_x", True)
    assert presented_secret(request({**cookie, "authorization": "  "})) == ("sst_x", True)
    assert presented_secret(request({**cookie, "authorization": "Bearer sst_y"})) == (
        "sst_y",
        False,
    )
    assert presented_secret(request({**cookie, "authorization": "Basic eA=="})) == ("", False)
    assert presented_secret(request({})) == (None, False)


def test_naming_another_team_is_forbidden() -> None:
    viewer = Principal("v", Role.VIEWER, frozenset({"alpha"}))
    refuse_foreign_teams(viewer, ["alpha"])
    refuse_foreign_teams(Principal("all", Role.VIEWER), ["beta"])
    with pytest.raises(HTTPException, match="may not read team 'beta'") as info:
        refuse_foreign_teams(viewer, ["alpha", "beta"])
    assert info.value.status_code == 403


def test_network_keys_are_validated_with_file_key_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[api]\nallowed_hosts = ["https://spend.example.com"]\ntrusted_proxies = ["*"]\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert str(path) in message
    assert "api.allowed_hosts" in message and "without scheme or port" in message
    assert "api.trusted_proxies" in message and "10.0.0.0/8" in message
    path.write_text(
        '[api]\nallowed_hosts = ["Spend.Example.com"]\ntrusted_proxies = ["10.1.2.3/8"]\n'
    )
    api = load_settings(path).api
    assert api.allowed_hosts == ["spend.example.com"]
    assert api.trusted_proxies == ["10.0.0.0/8"]
    assert api.metrics == "token"  # /metrics needs a token unless configured open
