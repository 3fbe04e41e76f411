"""Quota configuration errors, the admission rule (pure), and POST /api/v1/admit over real HTTP
(uvicorn on loopback, a test Authenticator)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from spendstream.auth.roles import Principal, Role
from spendstream.config import ConfigError, Settings
from spendstream.decisions import DecisionsMessage
from spendstream.events import UsageEvent
from spendstream.producers.admission import AdmissionView
from spendstream.quotas.config import load_quotas, quota_bounds
from spendstream.quotas.http import quota_router
from spendstream.quotas.overrides import OverrideRequest
from tests.support.http_app import ServedApp, TokenAuthenticator
from tests.support.quota_data import decision, snapshot


def test_invalid_quotas_name_key_value_and_fix() -> None:
    settings = Settings(
        quotas=[
            {"name": "a", "limit": "1", "tokens": 5},
            {"name": "b", "requests": 10, "per": "fortnight", "group_by": ["User"]},
            {"name": "same", "limit": "1", "channels": ["nowhere"]},
        ],
        budgets=[{"name": "same", "limit": "10", "block_at": 100}],
    )
    with pytest.raises(ConfigError) as error:
        load_quotas(settings)
    text = str(error.value)
    assert "quotas[0]: Value error, set exactly one of limit (USD), tokens, requests" in text
    assert "quotas[1].per = 'fortnight'" in text and 'fix: one of "minute", "hour"' in text
    assert "quotas[1].group_by" in text and "'User' is not a tag name" in text
    assert "'nowhere' is not defined; fix: add it under [alerts.channels]" in text
    assert "budgets[0].block_at: quota name 'same' is used twice" in text


def test_budget_block_at_is_a_quota() -> None:
    settings = Settings(
        budgets=[
            {
                "name": "search",
                "scope": {"team": "search"},
                "limit": "200",
                "period": "week",
                "block_at": 90,
            }
        ]
    )
    (quota,) = load_quotas(settings).quotas
    assert (quota.name, quota.unit, quota.amount, quota.per) == ("search", "usd", 180, "week")


def test_admission_rule() -> None:
    view = AdmissionView(
        stale_after_s=30, overlap_s=0, cost_of=lambda e: Decimal("0.25") * e.request_count
    )
    assert view.admit("m", 0, {"team": "support", "user": "a"}).stale  # nothing heard yet
    view.apply(snapshot(decision("user=bob", "1.2", True), decision("user=amy", "0.5", False)))
    bob = view.admit("m", 0, {"team": "support", "user": "bob"})
    assert not bob.allowed and bob.quota == "user-daily" and bob.key == "user=bob"
    assert 3500 < bob.retry_after <= 3600 and "user=bob" in bob.reason
    amy = view.admit("m", 0, {"team": "support", "user": "amy"})
    assert amy.allowed and amy.remaining == Decimal("0.5")
    assert view.admit("m", 0, {"team": "search", "user": "bob"}).quota == ""  # out of scope
    # This process's own calls count until the worker's decision includes them.
    for _ in range(2):
        view.note(UsageEvent(provider="p", model="m", tags={"team": "support", "user": "amy"}))
    assert not view.admit("m", 0, {"team": "support", "user": "amy"}).allowed
    # An older reading (another worker, a replay) never replaces a newer one.
    view.apply(
        DecisionsMessage(
            kind="update",
            published_at=datetime.now(UTC),
            decisions=(
                decision("user=bob", "0", False, as_of=datetime.now(UTC) - timedelta(seconds=5)),
            ),
        )
    )
    assert not view.admit("m", 0, {"team": "support", "user": "bob"}).allowed
    # A period that has ended starts again at zero without waiting for the worker.
    view.apply(
        DecisionsMessage(
            kind="update",
            published_at=datetime.now(UTC),
            decisions=(
                decision(
                    "user=bob",
                    "3",
                    True,
                    as_of=datetime.now(UTC) + timedelta(seconds=1),
                    resets_at=datetime.now(UTC) - timedelta(seconds=1),
                ),
            ),
        )
    )
    assert view.admit("m", 0, {"team": "support", "user": "bob"}).allowed
    # Requests: this call counts; three fit in a limit of 3, the fourth does not.
    for _ in range(3):
        assert view.admit("m", 0, {"app": "bot"}).allowed
        view.note(UsageEvent(provider="p", model="m", tags={"app": "bot"}))
    assert not view.admit("m", 0, {"app": "bot"}).allowed


def test_stale_view_honours_when_stale() -> None:
    view = AdmissionView(stale_after_s=5, cost_of=lambda e: Decimal("0.6"))
    view.apply(snapshot(published=datetime.now(UTC) - timedelta(seconds=6)))
    closed = view.admit("m", 0, {"app": "bot"})
    assert not closed.allowed and closed.stale and "when_stale = closed" in closed.reason
    opened = view.admit("m", 0, {"team": "support", "user": "bob"})
    assert opened.allowed and opened.stale
    # "open" does not deny for want of news, but this process's own usage still counts.
    for _ in range(2):
        view.note(UsageEvent(provider="p", model="m", tags={"team": "support", "user": "bob"}))
    own = view.admit("m", 0, {"team": "support", "user": "bob"})
    assert not own.allowed and own.stale and own.quota == "user-daily"


# Bearer token → principal, for the test Authenticator.
PRINCIPALS = {
    "svc": Principal("app", Role.SERVICE),
    "svc-ops": Principal("ops-app", Role.SERVICE, frozenset({"ops"})),
    "view": Principal("dash", Role.VIEWER),
    "ops": Principal("oncall", Role.OPERATOR),
    "ops-team": Principal("team-oncall", Role.OPERATOR, frozenset({"ops"})),
}


OVERRIDES: list[OverrideRequest] = []


def record_override(request: OverrideRequest) -> dict[str, object]:
    if request.quota != "user-daily":
        raise KeyError(f"no quota named {request.quota!r}")
    OVERRIDES.append(request)
    return {"override_id": "o1", "until": "2026-11-30T10:00:00+00:00"}


@pytest.fixture
def admit_url() -> Iterator[str]:
    view = AdmissionView(stale_after_s=60)
    view.apply(snapshot(decision("user=bob", "1.5", True), decision("user=amy", "0.25", False)))
    with ServedApp(TokenAuthenticator(PRINCIPALS), quota_router(view, record_override)) as served:
        yield f"{served.url}/api/v1/admit"


def test_http_admit(admit_url: str) -> None:
    def post(token: str | None, tags: dict[str, str], **kw: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(admit_url, json={"model": "m", "tags": tags}, headers=headers, **kw)  # type: ignore[arg-type]

    amy = post("svc", {"team": "support", "user": "amy"})
    assert amy.status_code == 200 and amy.json()["allowed"] is True
    assert amy.headers["RateLimit-Remaining"] == "0.75"
    bob = post("svc", {"team": "support", "user": "bob"})
    assert bob.status_code == 429 and bob.json()["quota"] == "user-daily"
    assert 3500 <= int(bob.headers["Retry-After"]) <= 3600
    assert bob.headers["RateLimit-Remaining"] == "0" and bob.headers["RateLimit-Limit"] == "1"
    assert post(None, {"team": "support"}).status_code == 401
    assert post("view", {"team": "support"}).status_code == 403
    assert post("svc-ops", {"team": "support", "user": "amy"}).status_code == 403
    assert post("svc-ops", {"team": "ops"}).status_code == 200
    form = httpx.post(admit_url, data={"model": "m"}, headers={"Authorization": "Bearer svc"})
    assert form.status_code == 422


def test_http_override_needs_an_unscoped_operator_and_records_the_token(admit_url: str) -> None:
    url = admit_url.replace("/admit", "/quotas/overrides")
    body = {"quota": "user-daily", "key": "user=bob", "limit": "5", "duration": "2h", "by": "me"}

    def post(token: str, payload: dict[str, str]) -> httpx.Response:
        return httpx.post(url, json=payload, headers={"Authorization": f"Bearer {token}"})

    OVERRIDES.clear()
    for token in ("svc", "view", "ops-team"):
        assert post(token, body).status_code == 403, token
    assert not OVERRIDES
    assert post("ops", {**body, "quota": "nope"}).status_code == 404
    done = post("ops", body)
    assert done.status_code == 200 and done.json()["override_id"] == "o1"
    assert [o.by for o in OVERRIDES] == ["oncall"]  # the token's name, never the body's


def test_minute_and_hour_periods_in_a_zone() -> None:
    moment = datetime(2026, 11, 30, 8, 41, 17, tzinfo=UTC)
    assert quota_bounds("minute", "UTC", moment) == (
        datetime(2026, 11, 30, 8, 41, tzinfo=UTC),
        datetime(2026, 11, 30, 8, 42, tzinfo=UTC),
    )
    # Kolkata is UTC+5:30: its hours start at :30 UTC.
    assert quota_bounds("hour", "Asia/Kolkata", moment) == (
        datetime(2026, 11, 30, 8, 30, tzinfo=UTC),
        datetime(2026, 11, 30, 9, 30, tzinfo=UTC),
    )
    assert quota_bounds("day", "UTC", moment)[0] == datetime(2026, 11, 30, tzinfo=UTC)
