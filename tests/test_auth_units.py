"""Pure rules of access control: no escalation, secret format, the failure brake, scoping SQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import HTTPException, Request

from spendstream.auth.authenticator import FailureBrake, TokenAuthenticator
from spendstream.auth.roles import Principal, Role
from spendstream.auth.scope import team_condition
from spendstream.auth.tokens import (
    EscalationError,
    TokenRecord,
    check_grant,
    digest,
    secret_matches,
    token_id_of,
)
from spendstream.errors import UnavailableError
from spendstream.sinks.queries import spend_report_sql

NOW = datetime(2026, 11, 30, tzinfo=UTC)
ADMIN = Principal("root", Role.ADMIN)
TEAM_ADMIN = Principal("a-admin", Role.ADMIN, frozenset({"a", "b"}))
OPERATOR = Principal("op", Role.OPERATOR)


@pytest.mark.parametrize(
    ("creator", "role", "teams"),
    [
        (OPERATOR, Role.ADMIN, []),
        (OPERATOR, Role.SERVICE, []),  # operate does not include ingest
        (TEAM_ADMIN, Role.VIEWER, []),  # every team is more than {a, b}
        (TEAM_ADMIN, Role.VIEWER, ["a", "c"]),
        (Principal("v", Role.VIEWER, frozenset({"a"})), Role.VIEWER, ["a", "b"]),
    ],
)
def test_no_token_grants_more_than_its_creator_holds(
    creator: Principal, role: Role, teams: list[str]
) -> None:
    with pytest.raises(EscalationError):
        check_grant(creator, role, teams)


@pytest.mark.parametrize(
    ("creator", "role", "teams"),
    [
        (ADMIN, Role.ADMIN, []),
        (None, Role.ADMIN, []),
        (TEAM_ADMIN, Role.OPERATOR, ["a"]),
        (OPERATOR, Role.VIEWER, ["x"]),
    ],
)
def test_grants_within_the_creators_rights(
    creator: Principal | None, role: Role, teams: list[str]
) -> None:
    check_grant(creator, role, teams)


def test_secret_format_and_constant_time_match() -> None:
    secret = "sst_0123456789abcdef_" + "A" * 43
    assert token_id_of(secret) == "0123456789abcdef"
    for bad in ("", "sst_", "Bearer x", secret + "x", secret.replace("sst_", "sk_")):
        assert token_id_of(bad) is None
    assert secret_matches(secret, digest(secret))
    assert not secret_matches(secret[:-1] + "B", digest(secret))


def test_brake_refuses_a_client_after_repeated_failures_only() -> None:
    brake = FailureBrake(max_failures=3, window_s=60)
    for _ in range(3):
        assert brake.retry_after("10.0.0.1") == 0
        brake.failed("10.0.0.1")
    assert 59 < brake.retry_after("10.0.0.1") <= 60
    assert brake.retry_after("10.0.0.2") == 0


def test_scope_is_in_every_spend_query_and_tags_are_parameters() -> None:
    scope = team_condition(TEAM_ADMIN)
    assert scope == ("team IN {scope_teams:Array(String)}", {"scope_teams": ["a", "b"]})
    sql, params = spend_report_sql(
        ["plan"],
        *[None] * 2,
        filters={"app": ["x"]},
        scope=scope,  # type: ignore[list-item]
    )
    assert "(team IN {scope_teams:Array(String)})" in sql and "plan" not in sql
    assert params["scope_teams"] == ["a", "b"] and "plan" in params.values()
    with pytest.raises(ValueError):
        spend_report_sql(["x') OR 1=1 --"], NOW, NOW)


def test_a_recently_verified_token_survives_a_storage_outage() -> None:
    """/metrics and the outage's 503s must stay readable by whoever watched them before."""
    record = TokenRecord("t1", "watcher", Role.VIEWER, (), "0" * 64, NOW, "root")
    store = OutageStore(record)
    authenticator = TokenAuthenticator(store, cache_s=0.0)  # type: ignore[arg-type]
    assert authenticator._record(record.token_id) is record
    store.down = True
    assert authenticator._record(record.token_id) is record  # verified before: still known
    with pytest.raises(UnavailableError):
        authenticator._record("never-seen")
    stale = TokenAuthenticator(store, cache_s=0.0, stale_if_unavailable_s=0.0)  # type: ignore[arg-type]
    store.down = False
    stale._record(record.token_id)
    store.down = True
    with pytest.raises(UnavailableError):
        stale._record(record.token_id)


class OutageStore:
    """A token store holding one row, that can be cut (a pure unit test: no ClickHouse)."""

    def __init__(self, record: TokenRecord) -> None:
        self.record = record
        self.down = False

    def get(self, token_id: str) -> TokenRecord | None:
        if self.down:
            raise UnavailableError("storage unavailable")
        return self.record if token_id == self.record.token_id else None

    def all(self) -> list[TokenRecord]:
        return [self.record]


SECRET = "sst_00000000000000a1_" + "A" * 43


def bearer(secret: str | None, client: str = "10.0.0.1") -> Request:
    headers = [] if secret is None else [(b"authorization", f"Bearer {secret}".encode())]
    scope = {"type": "http", "method": "GET", "path": "/api/v1/spend", "headers": headers}
    return Request({**scope, "client": (client, 50000)})


def status_of(authenticator: TokenAuthenticator, request: Request) -> int:
    try:
        authenticator.authenticate(request)
    except HTTPException as exc:
        return exc.status_code
    return 200


def primed_authenticator() -> TokenAuthenticator:
    record = TokenRecord("00000000000000a1", "ci", Role.ADMIN, (), digest(SECRET), NOW, "root")
    authenticator = TokenAuthenticator(OutageStore(record), max_failures=3)  # type: ignore[arg-type]
    authenticator.prime()  # as the API does when it starts
    return authenticator


def test_a_request_without_credentials_is_not_a_guess() -> None:
    authenticator = primed_authenticator()
    assert [status_of(authenticator, bearer(None)) for _ in range(10)] == [401] * 10
    assert authenticator.brake.failures == {}
    assert status_of(authenticator, bearer(SECRET)) == 200


def test_guesses_are_braked_but_a_valid_token_still_gets_in() -> None:
    authenticator = primed_authenticator()
    guesses = ["nope", "sst_00000000000000b2_" + "B" * 43, "sst_00000000000000c3_" + "C" * 43]
    assert [status_of(authenticator, bearer(g)) for g in guesses] == [401] * 3
    assert status_of(authenticator, bearer("sst_00000000000000d4_" + "D" * 43)) == 429
    assert status_of(authenticator, bearer("nope")) == 429
    assert status_of(authenticator, bearer(SECRET)) == 200  # others' failures are not its own
    # Guessing the secret of a stored id brakes that id from that address only.
    wrong = SECRET[:-1] + "B"
    assert [status_of(authenticator, bearer(wrong, "10.0.0.2")) for _ in range(3)] == [401] * 3
    assert status_of(authenticator, bearer(wrong, "10.0.0.2")) == 429
    assert status_of(authenticator, bearer(SECRET, "10.0.0.2")) == 429
    assert status_of(authenticator, bearer(SECRET, "10.0.0.3")) == 200
