"""Quotas on a usage unit (``units = { vector_queries = 1000 }``): configuration errors, the
admission rule (pure), and decisions from ledger rows with unit quantities (real chDB)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.config import ConfigError, Settings
from spendstream.decisions import QuotaSpec
from spendstream.events import UsageEvent
from spendstream.producers.admission import AdmissionView
from spendstream.quotas.config import load_quotas
from spendstream.quotas.engine import QuotaEngine
from spendstream.quotas.store import QuotaStore
from tests.support.ledger_data import fill_ledger
from tests.support.quota_data import decision, snapshot

RAG = {"team": "rag", "user": "amy"}


def test_unit_quota_config_and_its_errors() -> None:
    quotas = Settings(
        quotas=[
            {"name": "vq", "units": {"vector_queries": 1000}, "per": "hour"},
            {"name": "audio", "units": {"audio_seconds": "93.5"}},
        ]
    )
    vq, audio = load_quotas(quotas).quotas
    assert (vq.unit, vq.amount, vq.spec().unit, vq.spec().limit) == (
        "vector_queries",
        1000,
        "vector_queries",
        1000,
    )
    assert (audio.unit, audio.amount) == ("audio_seconds", Decimal("93.5"))
    settings = Settings(
        quotas=[
            {"name": "a", "units": {"vector_queries": 5}, "requests": 5},
            {"name": "b", "units": {"vector_queries": 5, "images": 2}},
            {"name": "c", "units": {"Vector": 5}},
            {"name": "d", "units": {"tokens": 5}},
            {"name": "e", "units": {"images": 0}},
            {"name": "f", "units": {"audio_seconds": 1.5}},
        ]
    )
    with pytest.raises(ConfigError) as error:
        load_quotas(settings)
    text = str(error.value)
    assert "quotas[0]: Value error, set exactly one of limit (USD), tokens, requests, steps" in (
        text
    )
    assert "quotas[1]: Value error, units names 2 units; a quota counts exactly one" in text
    assert "quotas[2].units.Vector" in text and "fix: one usage unit and its positive" in text
    assert "quotas[3]: Value error, units = { tokens = ... }: write tokens = N instead" in text
    assert "quotas[4]: Value error, units.images = 0: the quantity must be positive" in text
    assert "quotas[5].units.audio_seconds = 1.5" in text and "decimal string" in text


def test_budget_with_unit_and_block_at_is_still_refused() -> None:
    settings = Settings(
        budgets=[{"name": "v", "limit": "10", "unit": "vector_queries", "block_at": 100}]
    )
    with pytest.raises(
        ConfigError, match=r"a budget with unit .* add a quota: \[\[quotas\]\] units = "
    ):
        load_quotas(settings)


def test_admission_counts_unit_quantities_and_variants() -> None:
    spec = QuotaSpec(
        name="images-hourly",
        scope={"team": ("rag",)},
        group_by=("user",),
        unit="images",
        limit=Decimal(10),
        per="hour",
    )
    view = AdmissionView(stale_after_s=30, overlap_s=0)
    used = decision(
        "user=amy", "6", False, quota="images-hourly", unit="images", limit=10, remaining=4
    )
    view.apply(snapshot(used, specs=(spec,)))
    allowed = view.admit("m", 0, RAG, estimated_units={"images.1024x1024.hd": 4})
    assert allowed.allowed and (allowed.unit, allowed.remaining) == ("images", 4)
    assert not view.admit("m", 0, RAG, estimated_units={"images": Decimal("4.5")}).allowed
    # Other units, and units merely sharing a prefix, do not count.
    assert view.admit("m", 0, RAG, estimated_units={"images_x": 9, "vector_queries": 9}).allowed
    # This process's recorded events count until the worker's decision includes them.
    units = {
        "images.1024x1024.hd": Decimal(2),
        "images.1024x1024": Decimal(1),
        "vector_queries": Decimal(40),
    }
    view.note(UsageEvent(provider="openai", model="m", units=units, tags=RAG))
    denied = view.admit("m", 0, RAG, estimated_units={"images": 2})
    assert not denied.allowed and denied.remaining == 1
    assert "9 of 10 images used" in denied.reason
    assert view.admit("m", 0, RAG, estimated_units={"images": 1}).allowed
    assert view.admit("m", 0, {**RAG, "user": "bob"}, estimated_units={"images": 10}).allowed


def unit_event(index: int, user: str, units: dict[str, str]) -> UsageEvent:
    return UsageEvent(
        event_id=f"u-{user}-{index}",
        event_time=datetime.now(UTC) - timedelta(seconds=1),
        provider="openai",
        model="dall-e-3",
        operation="image",
        units={name: Decimal(quantity) for name, quantity in units.items()},
        tags={"team": "rag", "user": user},
    )


def test_engine_decides_a_unit_quota_from_the_ledger(ledger_client: Client) -> None:
    events = [
        unit_event(0, "amy", {"images.1024x1024.hd": "2"}),
        unit_event(1, "amy", {"images.1024x1024": "1", "vector_queries": "40"}),
        unit_event(2, "bob", {"images.1024x1024": "1"}),
        # A custom unit with no price: the event is unpriced, its quantity still counts.
        unit_event(3, "bob", {"vector_queries": "12.5"}),
    ]
    rated = fill_ledger(ledger_client, events)
    fill_ledger(ledger_client, [e for e, _ in rated])  # replayed: never counts twice
    assert not rated[3][1].priced
    settings = Settings(
        quotas=[
            {
                "name": "images",
                "scope": {"team": "rag"},
                "group_by": ["user"],
                "units": {"images": 3},
            },
            {"name": "vq", "scope": {"team": "rag"}, "units": {"vector_queries": 100}},
        ]
    )
    engine = QuotaEngine(load_quotas(settings), QuotaStore(ledger_client), outbox=None)
    decided = {(d.quota, d.key): d for d in engine.decide(None)}
    amy, bob = decided[("images", "user=amy")], decided[("images", "user=bob")]
    assert (amy.unit, amy.used, amy.allowed, amy.over) == ("images", 3, False, True)
    assert (bob.used, bob.allowed, bob.remaining) == (1, True, 2)
    assert "3 images of 3 images used" in amy.reason
    vq = decided[("vq", "")]
    assert (vq.unit, vq.used, vq.remaining, vq.allowed) == (
        "vector_queries",
        Decimal("52.5"),
        Decimal("47.5"),
        True,
    )
    engine.commit(list(decided.values()))
    kinds = "SELECT quota, key, unit, kind FROM quota_transitions FINAL"
    assert [tuple(r) for r in ledger_client.query(kinds).result_rows] == [
        ("images", "user=amy", "images", "block")
    ]
