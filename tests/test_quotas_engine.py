"""The quota engine on real chDB: usage from ledger FINAL, decisions, transitions recorded once
across two engines (two workers), overrides and resets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from clickhouse_connect.driver.client import Client

from spendstream.config import Settings
from spendstream.events import UsageEvent
from spendstream.quotas.config import load_quotas
from spendstream.quotas.engine import QuotaEngine
from spendstream.quotas.overrides import OverrideRequest, apply_override
from spendstream.quotas.store import QuotaStore
from tests.support.ledger_data import fill_ledger


def event(user: str, app: str = "bot", index: int = 0) -> UsageEvent:
    return UsageEvent(
        event_id=f"{user}-{app}-{index}",
        event_time=datetime.now(UTC) - timedelta(seconds=1),
        provider="anthropic",
        model="claude-sonnet-4-5",
        input_tokens=4000,
        output_tokens=400,  # $0.018
        tags={"team": "support", "user": user, "app": app},
    )


def engine(client: Client) -> QuotaEngine:
    settings = Settings(
        quotas=[
            {
                "name": "per-user",
                "scope": {"team": "support"},
                "group_by": ["user"],
                "limit": "0.05",
            },
            {
                "name": "per-user-app",
                "scope": {"team": "support"},
                "group_by": ["user", "app"],
                "requests": 2,
            },
        ]
    )
    return QuotaEngine(load_quotas(settings), QuotaStore(client), outbox=None)


def test_decisions_transitions_overrides_and_resets(ledger_client: Client) -> None:
    rated = fill_ledger(ledger_client, [event("amy", index=i) for i in range(3)] + [event("bob")])
    fill_ledger(ledger_client, [e for e, _ in rated])  # replayed: never counts twice
    first = engine(ledger_client)
    decided = {(d.quota, d.key): d for d in first.decide(None)}
    amy, bob = decided[("per-user", "user=amy")], decided[("per-user", "user=bob")]
    assert amy.used == sum(r.cost_total for e, r in rated if e.tags["user"] == "amy")
    assert (amy.allowed, amy.over, bob.allowed, bob.remaining) == (
        False,
        True,
        True,
        Decimal("0.032"),
    )
    assert not decided[("per-user-app", "user=amy,app=bot")].allowed  # 3 requests of 2
    first.commit(list(decided.values()))
    touched = first.decide({"per-user-app": {"user=amy,app=bot", "user=bob,app=bot"}})
    assert {d.key: d.used for d in touched} == {"user=amy,app=bot": 3, "user=bob,app=bot": 1}

    # A second worker (empty memory) reaches the same verdicts: no second transition.
    second = engine(ledger_client)
    second.commit(second.decide(None))
    first.commit(first.decide(None))
    kinds = "SELECT quota, key, kind FROM quota_transitions FINAL ORDER BY quota, key, version"
    assert [tuple(r) for r in ledger_client.query(kinds).result_rows] == [
        ("per-user", "user=amy", "block"),
        ("per-user-app", "user=amy,app=bot", "block"),
    ]

    store, now = QuotaStore(ledger_client), datetime.now(UTC)
    request = OverrideRequest(
        quota="per-user", key="user=amy", limit=Decimal(1), reason="demo", by="tester"
    )
    apply_override(store, first.quotas, request, now)
    first.forget_overrides()
    lifted = {d.key: d for d in first.decide({"per-user": {"user=amy"}})}["user=amy"]
    assert lifted.allowed and lifted.limit == 1 and "override to $1.00 by tester" in lifted.reason
    first.commit([lifted])
    reset = OverrideRequest(action="reset", quota="per-user-app", key="app=bot,user=amy", by="t")
    apply_override(store, first.quotas, reset, now + timedelta(seconds=1))
    first.forget_overrides()
    forgiven = first.decide({"per-user-app": {"user=amy,app=bot"}})
    assert forgiven[0].allowed and forgiven[0].used == 0
    first.commit(forgiven)
    assert [tuple(r) for r in ledger_client.query(kinds).result_rows] == [
        ("per-user", "user=amy", "block"),
        ("per-user", "user=amy", "unblock"),
        ("per-user-app", "user=amy,app=bot", "block"),
        ("per-user-app", "user=amy,app=bot", "unblock"),
    ]
    audit = store.overrides()
    assert [(row[3], row[8]) for row in audit] == [("limit", "tester"), ("reset", "t")]
