"""How far the ledger is complete, and admission counting a process's own calls until it is:
the worker's per-partition stored offsets, the SDK's coverage by offsets, and the decisions
that carry them (pure units; the lagging worker end to end is in test_quotas_lag.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from spendstream.config import GuardrailSettings
from spendstream.decisions import DecisionsMessage, QuotaDecision, StoredOffsets
from spendstream.events import UsageEvent
from spendstream.pricing import Rating
from spendstream.producers.admission import AdmissionView
from spendstream.producers.own_usage import MAX_AWAITING, MAX_PLACED, LocalUsage, OwnUsage
from spendstream.quotas.progress import LedgerProgress
from spendstream.quotas.service import QuotaLoop
from spendstream.sinks.entry import KafkaOrigin, LedgerEntry
from tests.support.quota_data import decision, snapshot

TOPIC = "spendstream.usage.v1"
AMY = {"team": "support", "user": "amy"}


def entry(partition: int, offset: int, topic: str = TOPIC) -> LedgerEntry:
    event = UsageEvent(provider="p", model="m", tags=AMY)
    origin = KafkaOrigin(topic, partition, offset)
    return LedgerEntry(event, Rating(priced=False, price_ref=""), origin)


def test_ledger_progress_keeps_the_highest_stored_offset_per_partition() -> None:
    progress = LedgerProgress()
    assert progress.snapshot() == ()
    progress.note([entry(0, 5), entry(0, 9), entry(1, 3), entry(0, 7)])
    progress.note([entry(1, 2)])  # a replayed, older slice never moves the point back
    progress.note([entry(0, 1, topic="spans")])
    assert progress.snapshot() == (
        StoredOffsets(topic="spans", offsets={0: 1}),
        StoredOffsets(topic=TOPIC, offsets={0: 9, 1: 3}),
    )


def update(*decisions: QuotaDecision, stored: dict[int, int] | None) -> DecisionsMessage:
    return DecisionsMessage(
        kind="update",
        published_at=datetime.now(UTC),
        decisions=decisions,
        stored=None if stored is None else (StoredOffsets(topic=TOPIC, offsets=stored),),
    )


def later(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def record(view: AdmissionView, count: int, first_offset: int, partition: int = 0) -> None:
    """``count`` calls of $0.25 by amy, each acknowledged at the next offset."""
    for index in range(count):
        event = UsageEvent(provider="p", model="m", tags=AMY)
        payload = event.to_json_bytes()
        view.note(event, payload)
        view.delivered([payload], TOPIC, partition, first_offset + index)


def amy_used(view: AdmissionView) -> Decimal:
    answer = view.admit("m", 0, AMY)
    assert answer.limit is not None and answer.remaining is not None
    return answer.limit - answer.remaining


def test_own_calls_count_until_the_ledger_is_known_to_hold_them() -> None:
    view = AdmissionView(stale_after_s=60, overlap_s=1, cost_of=lambda e: Decimal("0.25"))
    view.apply(snapshot(decision("user=amy", "0", False)))
    record(view, 3, first_offset=100)  # $0.75 at offsets 100..102
    assert amy_used(view) == Decimal("0.75")
    # The worker lags: a newer decision (as_of later than every call) still reads $0 because
    # the ledger is complete only through offset 99. The old clock rule forgot all three calls.
    view.apply(update(decision("user=amy", "0", False, as_of=later(5)), stored={0: 99}))
    assert amy_used(view) == Decimal("0.75")
    record(view, 1, first_offset=103)
    assert not view.admit("m", 0, AMY).allowed  # $1.00 of $1: this process stops itself
    # The ledger reaches offset 101: two calls are in used now, two still local; none twice.
    view.apply(update(decision("user=amy", "0.5", False, as_of=later(6)), stored={0: 101}))
    assert amy_used(view) == Decimal("1.00")
    # A snapshot (no completeness claim) or another worker's point on another partition keeps
    # what is covered: coverage only grows.
    view.apply(snapshot(decision("user=amy", "0.5", False, as_of=later(7))))
    view.apply(update(decision("user=amy", "0.5", False, as_of=later(8)), stored={3: 50}))
    assert amy_used(view) == Decimal("1.00")
    view.apply(update(decision("user=amy", "1.0", True, as_of=later(9)), stored={0: 103}))
    assert amy_used(view) == Decimal("1.00")


def test_an_acknowledgement_after_the_decision_that_covers_it_is_not_counted_twice() -> None:
    view = AdmissionView(stale_after_s=60, cost_of=lambda e: Decimal("0.25"))
    view.apply(snapshot(decision("user=amy", "0", False)))
    event = UsageEvent(provider="p", model="m", tags=AMY)
    view.note(event, event.to_json_bytes())
    # The worker stored it (offset 7) and decided before the broker's ack reached the sender.
    view.apply(update(decision("user=amy", "0.25", False, as_of=later(1)), stored={0: 7}))
    assert amy_used(view) == Decimal("0.50")  # not yet known to be offset 7: errs to deny
    view.delivered([event.to_json_bytes()], TOPIC, 0, 7)
    assert amy_used(view) == Decimal("0.25")


def test_unacknowledged_calls_and_other_topics_keep_counting() -> None:
    view = AdmissionView(stale_after_s=60, cost_of=lambda e: Decimal("0.25"))
    view.apply(snapshot(decision("user=amy", "0", False)))
    spooled = UsageEvent(provider="p", model="m", tags=AMY)
    view.note(spooled, spooled.to_json_bytes())  # the broker is away: no offset yet
    other = UsageEvent(provider="p", model="m", tags=AMY)
    view.note(other, other.to_json_bytes())
    view.delivered([other.to_json_bytes()], "another.topic", 0, 1)
    view.apply(update(decision("user=amy", "0", False, as_of=later(1)), stored={0: 10**6}))
    assert amy_used(view) == Decimal("0.50")
    view.delivered([spooled.to_json_bytes()], TOPIC, 0, 10)  # replayed from the spool
    assert amy_used(view) == Decimal("0.25")


def test_a_worker_without_completeness_points_falls_back_to_the_clock() -> None:
    view = AdmissionView(stale_after_s=60, overlap_s=0, cost_of=lambda e: Decimal("0.25"))
    view.apply(snapshot(decision("user=amy", "0", False), published=datetime.now(UTC)))
    record(view, 2, first_offset=0)
    view.apply(update(decision("user=amy", "0.5", False, as_of=later(2)), stored=None))
    assert amy_used(view) == Decimal("0.50")  # the old rule: calls before as_of are in used


def test_local_usage_bounds_err_towards_denying() -> None:
    local = LocalUsage()
    for offset in range(MAX_PLACED * 2):
        local.add(0, 1)
        local.place(("t", 0), offset, 1)
    assert len(local.placed[("t", 0)]) <= MAX_PLACED
    # Merged records are covered no earlier than their highest offset.
    assert local.cover({("t", 0): 10}) <= 11
    assert local.cover({("t", 0): MAX_PLACED * 2 - 1}) == MAX_PLACED * 2
    own = OwnUsage()
    for index in range(MAX_AWAITING + 5):
        own.note(0, (("k", 1),), str(index).encode())
    assert len(own.awaiting) == MAX_AWAITING and b"0" not in own.awaiting
    assert own.delivered([b"0"], ("t", 0), 1) == set()  # evicted: keeps counting


class FakeEngine:
    """Decides nothing but notes what the ledger's completeness was when it was asked."""

    def __init__(self, progress: list[LedgerProgress]) -> None:
        self.progress = progress
        self.quotas = type("Q", (), {"quotas": ()})()
        self.seen: list[Any] = []

    def decide(self, touched: object = None) -> list[QuotaDecision]:
        self.seen.append(self.progress[0].snapshot())
        self.progress[0].note([entry(0, 99)])  # stored while deciding: not claimed
        return []

    def commit(self, decided: Sequence[QuotaDecision]) -> None: ...

    def prune(self) -> None: ...

    def decisions(self) -> list[QuotaDecision]:
        return []


class Published:
    def __init__(self) -> None:
        self.messages: list[DecisionsMessage] = []

    def publish(self, message: DecisionsMessage) -> None:
        self.messages.append(message)


def test_updates_carry_the_point_taken_before_the_ledger_is_read() -> None:
    holder: list[LedgerProgress] = []
    engine = FakeEngine(holder)
    published = Published()
    loop = QuotaLoop(engine, published, GuardrailSettings(), lambda: True)  # type: ignore[arg-type]
    holder.append(loop.progress)
    loop.progress.note([entry(2, 40)])
    loop.mark({"q": {"k"}})
    loop.step(full=False, snapshot=True)
    update_message, snap = published.messages
    assert update_message.kind == "update" and update_message.stored == (
        StoredOffsets(topic=TOPIC, offsets={2: 40}),
    )
    assert snap.kind == "snapshot" and snap.stored == ()
