"""Throttle quotas: over the limit, admission lets a configured share of the calls through.

The rule is checked over a minute of simulated traffic (pure: the view is fed decisions
directly), then over real HTTP (POST /api/v1/admit, uvicorn on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from spendstream.auth.roles import Principal, Role
from spendstream.config import ConfigError, Settings
from spendstream.decisions import QuotaSpec
from spendstream.producers.admission import AdmissionView
from spendstream.quotas.config import load_quotas
from spendstream.quotas.engine import judge
from spendstream.quotas.http import quota_router
from tests.support.http_app import ServedApp, TokenAuthenticator
from tests.support.quota_data import decision, snapshot

THROTTLED = QuotaSpec(
    name="user-daily",
    scope={"team": ("support",)},
    group_by=("user",),
    unit="usd",
    limit=Decimal(1),
    per="day",
    throttle=Decimal("0.1"),
)
BOB = {"team": "support", "user": "bob"}


def throttled_view(fraction: str) -> AdmissionView:
    view = AdmissionView(stale_after_s=3600, overlap_s=0)
    spec = THROTTLED.model_copy(update={"throttle": Decimal(fraction)})
    view.apply(snapshot(decision("user=bob", "1.2", True), specs=(spec,)))
    return view


@pytest.mark.parametrize(("fraction", "per_second"), [("0.1", 20), ("0.25", 7), ("0.05", 50)])
def test_a_minute_of_traffic_gets_the_configured_fraction(fraction: str, per_second: int) -> None:
    """A caller at its usual pace for 60 simulated seconds: the calls let through are the
    configured share of those attempted, spread evenly over the minute."""
    view = throttled_view(fraction)
    allowed_per_second = []
    for _second in range(60):
        answers = [view.admit("m", 0, BOB) for _ in range(per_second)]
        assert all(a.throttled and a.quota == "user-daily" for a in answers)
        allowed_per_second.append(sum(a.allowed for a in answers))
    attempted = 60 * per_second
    expected = Decimal(attempted) * Decimal(fraction)
    assert sum(allowed_per_second) == int(expected)
    # Evenly spread: every 10 s window gets its share, to within one call.
    for window in range(6):
        got = sum(allowed_per_second[window * 10 : window * 10 + 10])
        assert abs(got - expected / 6) <= 1, (window, got)


def test_throttled_answers_say_so() -> None:
    view = throttled_view("0.5")
    held, through = view.admit("m", 0, BOB), view.admit("m", 0, BOB)
    assert not held.allowed and held.throttled and "held back" in held.reason
    assert through.allowed and through.throttled and "let through" in through.reason
    assert held.as_dict()["throttled"] is True
    # Under the limit, the same quota admits everyone, not throttled.
    amy = view.admit("m", 0, {"team": "support", "user": "amy"})
    assert amy.allowed and not amy.throttled


def test_a_key_back_under_its_limit_is_no_longer_throttled() -> None:
    view = throttled_view("0.1")
    assert not view.admit("m", 0, BOB).allowed
    view.apply(
        snapshot(
            decision("user=bob", "0.2", False, as_of=datetime.now(UTC) + timedelta(seconds=1)),
            specs=(THROTTLED,),
        )
    )
    answers = [view.admit("m", 0, BOB) for _ in range(5)]
    assert all(a.allowed and not a.throttled for a in answers)
    assert "user=bob" not in str(view.credits)


def test_config_and_engine_decision() -> None:
    quotas = load_quotas(
        Settings(
            quotas=[
                {
                    "name": "soft",
                    "requests": 100,
                    "per": "minute",
                    "action": "throttle",
                    "throttle_fraction": 0.2,
                }
            ]
        )
    )
    (quota,) = quotas.quotas
    spec = quota.spec()
    # On the wire: action "block" (an older SDK blocks) with the share to let through.
    assert spec.action == "block" and spec.throttle == Decimal("0.2")
    now = datetime.now(UTC)
    over = judge(quota, "", Decimal(150), quota.bounds(now), now, {})
    assert over.over and over.allowed and over.throttled
    assert "throttled to 20 % of calls" in over.reason
    under = judge(quota, "", Decimal(50), quota.bounds(now), now, {})
    assert not under.over and not under.throttled


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1])
def test_bad_throttle_fraction_names_key_and_fix(fraction: float) -> None:
    settings = Settings(
        quotas=[{"name": "q", "requests": 1, "action": "throttle", "throttle_fraction": fraction}]
    )
    with pytest.raises(ConfigError) as error:
        load_quotas(settings)
    text = str(error.value)
    assert f"quotas[0].throttle_fraction = {fraction!r}" in text
    assert "fix: the share of calls admitted while over the limit" in text


@pytest.fixture
def throttled_admit_url() -> Iterator[str]:
    principals = {"svc": Principal("app", Role.SERVICE)}
    view = throttled_view("0.25")

    def no_override(request: object) -> dict[str, object]:
        raise KeyError("no overrides here")

    with ServedApp(TokenAuthenticator(principals), quota_router(view, no_override)) as served:
        yield f"{served.url}/api/v1/admit"


def test_http_admission_throttles(throttled_admit_url: str) -> None:
    """POST /api/v1/admit answers a throttled key 200 for a quarter of the calls, 429 with
    ``throttled`` and a short Retry-After for the rest."""
    statuses = []
    with httpx.Client(headers={"Authorization": "Bearer svc"}) as client:
        for _ in range(40):
            answer = client.post(throttled_admit_url, json={"model": "m", "tags": BOB})
            assert answer.json()["throttled"] is True
            if answer.status_code == 429:
                assert answer.headers["Retry-After"] == "1"
            statuses.append(answer.status_code)
    assert statuses.count(200) == 10 and statuses.count(429) == 30
    assert statuses[:4] == [429, 429, 429, 200]  # every fourth call goes through
