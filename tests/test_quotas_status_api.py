"""``GET /api/v1/quotas`` over real chDB: decisions written by the quota engine from a real
ledger, an override in force, bearer tokens required, and team scoping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from fastapi.testclient import TestClient

from spendstream.auth.roles import Principal, Role
from spendstream.config import Settings
from spendstream.events import UsageEvent
from spendstream.quotas.config import load_quotas
from spendstream.quotas.engine import QuotaEngine
from spendstream.quotas.http import quota_status_router
from spendstream.quotas.overrides import OverrideRequest, apply_override
from spendstream.quotas.store import QuotaStore
from spendstream.sinks.access import ClientReader
from tests.support.http_app import TokenAuthenticator
from tests.support.ledger_data import fill_ledger

TOKENS = {
    "all": Principal("all", Role.VIEWER),
    "alpha": Principal("alpha-viewer", Role.VIEWER, frozenset({"alpha"})),
}
QUOTAS: list[
    dict[str, Any]
] = [  # alpha's users get $0.03 a day; beta's $10; "everyone" has no team filter
    {"name": "alpha-users", "scope": {"team": "alpha"}, "group_by": ["user"], "limit": "0.03"},
    {"name": "beta-users", "scope": {"team": "beta"}, "group_by": ["user"], "limit": "10"},
    {"name": "everyone", "group_by": ["team"], "requests": 1000},
]


def event(team: str, user: str, index: int) -> UsageEvent:
    return UsageEvent(
        event_id=f"{team}-{user}-{index}",
        event_time=datetime.now(UTC) - timedelta(seconds=1),
        provider="anthropic",
        model="claude-sonnet-4-5",
        input_tokens=4000,
        output_tokens=400,  # $0.018
        tags={"team": team, "user": user},
    )


def test_quota_status_needs_a_token_and_is_team_scoped(ledger_client: Client) -> None:
    events = [event("alpha", "amy", i) for i in range(2)] + [event("beta", "bo", 0)]
    rated = fill_ledger(ledger_client, events)
    quotas = load_quotas(Settings(quotas=QUOTAS))
    engine = QuotaEngine(quotas, QuotaStore(ledger_client), outbox=None)
    engine.commit(engine.decide(None))
    request = OverrideRequest(
        quota="beta-users", key="user=bo", limit=Decimal(20), reason="launch week", by="ops"
    )
    apply_override(QuotaStore(ledger_client), quotas, request, datetime.now(UTC))
    app = FastAPI()
    app.state.authenticator = TokenAuthenticator(TOKENS)
    app.include_router(quota_status_router(ClientReader(ledger_client), quotas), prefix="/api/v1")
    client = TestClient(app)

    assert client.get("/api/v1/quotas").status_code == 401
    assert client.get("/api/v1/quotas", headers={"Authorization": "Bearer x"}).status_code == 401

    every = client.get("/api/v1/quotas", headers={"Authorization": "Bearer all"}).json()
    assert [q["quota"] for q in every["quotas"]] == ["alpha-users", "beta-users", "everyone"]
    status = [
        dict(zip(every["decisions"]["columns"], r, strict=True)) for r in every["decisions"]["rows"]
    ]
    by_key = {(s["quota"], s["key"]): s for s in status}
    amy = by_key[("alpha-users", "user=amy")]
    spent = sum(r.cost_total for e, r in rated if e.tags["user"] == "amy")
    assert (amy["allowed"], Decimal(amy["used"]), Decimal(amy["limit"])) == (
        False,
        spent,
        Decimal("0.03"),
    )
    assert amy["resets_at"] > amy["as_of"]
    assert by_key[("everyone", "team=beta")]["allowed"] is True
    overrides = [
        dict(zip(every["overrides"]["columns"], r, strict=True)) for r in every["overrides"]["rows"]
    ]
    assert [(o["quota"], o["key"], o["created_by"], o["reason"]) for o in overrides] == [
        ("beta-users", "user=bo", "ops", "launch week")
    ]
    assert overrides[0]["until"] > datetime.now(UTC).isoformat()

    alpha = client.get("/api/v1/quotas", headers={"Authorization": "Bearer alpha"}).json()
    assert [q["quota"] for q in alpha["quotas"]] == ["alpha-users"]
    assert {r[0] for r in alpha["decisions"]["rows"]} == {"alpha-users"}
    assert alpha["overrides"]["rows"] == []
    assert "beta" not in str(alpha)
