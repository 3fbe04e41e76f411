"""Events with ``event_id`` but no ``event_time``: every copy gets its first copy's time.

Unit level: the processor's stamp (the record's time), :class:`FirstStamps` (memory, then the
ledger), ``sinks.first_times`` on a real chDB ledger, and the wire form the SDK and HTTP ingest
send (no time stamped on the way). Through a real broker and worker: tests/test_untimed_resend.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.events import UsageEvent, parse_event
from spendstream.pricing import default_pricer
from spendstream.producers.partitioning import encode_event
from spendstream.sinks.first_times import first_times
from spendstream.stream.isolation import StoppedDuringOutage
from spendstream.stream.processor import BatchProcessor, RawMessage
from spendstream.stream.stamps import FirstStamps
from tests.support.ledger_data import fill_ledger

UNTIMED = {"event_id": "retry-1", "provider": "openai", "model": "gpt-4o", "input_tokens": 900}
T0 = datetime(2026, 11, 2, 10, 0, 59, 500_000, tzinfo=UTC)  # before any run: not capped


def message(payload: dict[str, object], at: datetime, offset: int = 0) -> RawMessage:
    return RawMessage(json.dumps(payload).encode(), "usage", 0, offset, timestamp=at.timestamp())


def filler(number: int, at: datetime) -> dict[str, object]:
    return {**UNTIMED, "event_id": f"filler-{number}", "event_time": at.isoformat()}


class Ledger:
    """A ledger read that answers from a dict and counts its calls."""

    def __init__(self, times: Mapping[str, datetime] | None = None) -> None:
        self.times = dict(times or {})
        self.calls: list[tuple[list[str], datetime]] = []

    def __call__(self, ids: Sequence[str], since: datetime) -> dict[str, datetime]:
        self.calls.append((list(ids), since))
        return {i: t for i, t in self.times.items() if i in ids and t >= since}


def processor(stamps: FirstStamps | None) -> BatchProcessor:
    return BatchProcessor(default_pricer(), stamps=stamps)


def test_an_untimed_event_gets_its_records_time_capped_at_the_clock() -> None:
    batch = processor(None).process([message(UNTIMED, T0)])
    assert [entry.event.event_time for entry in batch.entries] == [T0]
    future = T0 + timedelta(days=3650)  # a producer clock far ahead: the worker's clock wins
    (entry,) = processor(None).process([message(UNTIMED, future)]).entries
    assert entry.event.event_time < future


def test_a_copy_in_a_later_minute_gets_the_first_copys_time_from_memory() -> None:
    ledger = Ledger()
    worker = processor(FirstStamps(ledger))
    first = worker.process([message(UNTIMED, T0), message(filler(1, T0), T0, 1)])
    later = T0 + timedelta(minutes=3)
    copy = worker.process([message(filler(2, later), later, 2), message(UNTIMED, later, 3)])
    times = {e.event.event_id: e.event.event_time for e in first.entries + copy.entries}
    assert times["retry-1"] == T0
    (resent,) = [e for e in copy.entries if e.event.event_id == "retry-1"]
    assert resent.rating.cost_total == first.entries[0].rating.cost_total
    assert ledger.calls == [(["retry-1"], T0 - timedelta(days=7))]  # the first batch only


def test_a_copy_after_a_restart_gets_the_first_copys_time_from_the_ledger() -> None:
    ledger = Ledger({"retry-1": T0})
    later = T0 + timedelta(days=2)
    batch = processor(FirstStamps(ledger)).process([message(UNTIMED, later)])
    assert [entry.event.event_time for entry in batch.entries] == [T0]
    # Beyond the lookback it is a new event.
    too_late = T0 + timedelta(days=8)
    (entry,) = (
        processor(FirstStamps(Ledger({"retry-1": T0})))
        .process([message(UNTIMED, too_late)])
        .entries
    )
    assert entry.event.event_time == too_late


def test_timed_events_never_read_the_ledger() -> None:
    ledger = Ledger()
    batch = processor(FirstStamps(ledger)).process(
        [message(filler(n, T0), T0, n) for n in range(50)]
    )
    assert len(batch.entries) == 50 and ledger.calls == []


def test_an_outage_is_retried_until_the_worker_stops() -> None:
    calls: list[int] = []

    def down(ids: Sequence[str], since: datetime) -> dict[str, datetime]:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("ledger down")
        return {}

    stamps = FirstStamps(down, transient=lambda exc: True, retry_max_s=0.01)
    assert stamps.resolve({"a": T0}) == {"a": T0} and len(calls) == 3
    stopping = FirstStamps(down, transient=lambda exc: True, stopping=lambda: True)
    calls.clear()
    with pytest.raises(StoppedDuringOutage):
        stopping.resolve({"b": T0})


def test_memory_is_bounded_and_keeps_the_newest() -> None:
    stamps = FirstStamps(None, remembered=2)
    for number in range(3):
        stamps.resolve({f"id-{number}": T0 + timedelta(minutes=number)})
    assert list(stamps.recent) == ["id-1", "id-2"]


def test_the_wire_form_of_an_untimed_event_carries_no_time() -> None:
    """HTTP ingest and ``spendstream send`` publish what they validated without a time."""
    event = parse_event(json.dumps(UNTIMED).encode(), stamp_new=True)
    _, wire = encode_event(event.model_copy(update={"tags": {"team": "x"}}), "team")
    assert "event_time" not in json.loads(wire)
    new = parse_event(b'{"provider": "openai", "model": "gpt-4o"}', stamp_new=True)
    assert "event_time" in json.loads(encode_event(new, "team")[1])  # a new call: stamped


@pytest.mark.storage
def test_first_times_reads_the_earliest_copy_within_the_lookback(ledger_client: Client) -> None:
    base = UsageEvent(provider="openai", model="gpt-4o", input_tokens=10, event_time=T0)
    events = [
        base.model_copy(update={"event_id": "a"}),
        base.model_copy(update={"event_id": "a", "event_time": T0 + timedelta(minutes=5)}),
        base.model_copy(update={"event_id": "b", "event_time": T0 - timedelta(days=30)}),
        base.model_copy(update={"event_id": "c"}),
    ]
    fill_ledger(ledger_client, events)
    found = first_times(ledger_client, ["a", "b", "missing"], T0 - timedelta(days=7))
    assert found == {"a": T0}
    assert first_times(ledger_client, [], T0) == {}
