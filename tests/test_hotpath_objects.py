"""The hot path's per-event objects and settings (issue 29, docs/benchmarks-ingest.md): what
they must keep while they got cheaper."""

from __future__ import annotations

import gc
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.driver.insert import InsertContext

from spendstream.events import EventError, parse_event
from spendstream.matching import event_value, values_reader
from spendstream.pricing import default_pricer
from spendstream.pricing.scaled import ScaledPricer, ScaledRating
from spendstream.sinks.columns import EPOCH, RepeatedDateTime64, insert_types, scaled_integer
from spendstream.sinks.entry import KafkaOrigin, LedgerEntry
from spendstream.stream.fastpath import FastDecoder
from spendstream.stream.processor import TimeBounds
from spendstream.worker.collector import YOUNG_THRESHOLD, tune_collector

LINE = (
    b'{"event_id":"e-1","event_time":"2026-11-02T10:00:00.123Z","provider":"openai",'
    b'"model":"gpt-4o","input_tokens":1200,"output_tokens":300,"agent":"planner",'
    b'"tags":{"team":"search","env":"prod"}}'
)


def entry() -> LedgerEntry:
    event = FastDecoder().decode(LINE)
    assert event is not None
    return LedgerEntry(event, ScaledPricer(default_pricer()).rate(event), KafkaOrigin("t", 1, 7, 3))


def test_per_event_objects_are_not_tracked_by_the_collector() -> None:
    built = entry()
    assert isinstance(built.rating, ScaledRating)
    # Built per event: none of them may feed the cyclic collector (each referred to nothing
    # that refers back), which cost ~5 µs per event of collections.
    assert not any(gc.is_tracked(each) for each in (built, built.origin, built.rating))


def test_per_event_objects_stay_immutable_hashable_and_equal_by_value() -> None:
    first, second = entry(), entry()
    assert first.origin == KafkaOrigin("t", 1, 7, 3) and hash(first.origin) == hash(second.origin)
    assert first.rating == second.rating and first.rating.cost_total == second.rating.cost_total
    assert LedgerEntry(first.event, first.rating).origin == KafkaOrigin()
    with pytest.raises(AttributeError):
        first.origin.offset = 8  # type: ignore[misc]
    with pytest.raises(AttributeError):
        first.rating.price_ref = "x"  # type: ignore[misc]
    assert (
        first.rating.cost_total
        == ScaledPricer(default_pricer()).pricer.rate(first.event).cost_total
    )
    assert first.rating.cost_total > Decimal(0)


@pytest.mark.parametrize(
    "keys", [["env", "team"], ["team"], ["missing"], ["agent", "team"], ["model", "provider"]]
)
def test_values_reader_reads_what_event_value_reads(keys: list[str]) -> None:
    read = values_reader(keys)
    for event in (FastDecoder().decode(LINE), parse_event(LINE)):
        assert event is not None
        assert read(event) == tuple(event_value(event, key) for key in keys)


def context() -> InsertContext:
    return InsertContext("t", ["a"], [get_from_name("DateTime64(3, 'UTC')")])


def written(kind: object, column: list[object]) -> bytes:
    dest = bytearray()
    kind.write_column_data(column, dest, context())  # type: ignore[attr-defined]
    return bytes(dest)


def columns() -> Iterator[list[object]]:
    moment = datetime(2026, 11, 2, 10, 0, 0, 123456, tzinfo=UTC)
    yield [moment] * 5  # one moment: converted once, repeated
    yield [moment, moment + timedelta(milliseconds=1), moment]
    yield [moment.astimezone(timezone(timedelta(hours=5))), moment]  # equal instants
    yield [moment.replace(tzinfo=None)] * 3  # naive
    yield [moment]
    yield []
    # distinct UTC moments (the event times): C-level arithmetic, edges of the floors
    rng = random.Random(29)
    spread: list[object] = [
        EPOCH + timedelta(microseconds=rng.randrange(-(6 * 10**16), 6 * 10**16)) for _ in range(500)
    ]
    edges = [moment.replace(microsecond=us) for us in (0, 999, 1000, 999_999, 500_500)]
    yield spread + edges + [EPOCH, EPOCH - timedelta(microseconds=1)]
    yield [parse_event(LINE).event_time, moment]  # pydantic's own UTC zone
    yield [moment, moment.replace(tzinfo=None)]  # aware and naive
    yield [moment, moment.astimezone(ZoneInfo("Europe/Paris"))]  # a zone whose offset varies


@pytest.mark.parametrize("type_name", ["DateTime64(3, 'UTC')", "DateTime64(6)", "DateTime64(0)"])
@pytest.mark.parametrize("column", list(columns()))
def test_repeated_datetime64_writes_the_stock_bytes(type_name: str, column: list[object]) -> None:
    kind = insert_types([type_name])[0]
    assert isinstance(kind, RepeatedDateTime64)
    assert written(kind, column) == written(get_from_name(type_name), column)


def test_utc_moments_take_the_arithmetic_path() -> None:
    """(else the test above would not cover it)"""
    kind = insert_types(["DateTime64(3, 'UTC')"])[0]
    assert isinstance(kind, RepeatedDateTime64)
    moment = datetime(2026, 11, 2, 10, 0, 0, 123456, tzinfo=UTC)
    assert kind._utc_ticks([moment, parse_event(LINE).event_time]) is not None
    assert kind._utc_ticks([moment, moment.replace(tzinfo=None)]) is None
    assert insert_types(["DateTime64(9)"])[0]._utc_ticks([moment]) is None  # type: ignore[attr-defined]


def test_tune_collector_freezes_the_heap_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        assert tune_collector() == before
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD > before[0]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def to_bytes_reference(column: list[int], size: int) -> bytes:
    return b"".join(value.to_bytes(size, "little", signed=True) for value in column)


@pytest.mark.parametrize("type_name", ["Decimal(38, 18)", "Decimal(76, 18)"])
@pytest.mark.parametrize(
    "column",
    [
        [0, 1, 2**63 - 1, 5],  # one word each: the array path
        [10**17 + 7] * 3,
        [-1, 3],  # negative: every byte of each value
        [2**63, 1],  # past one word
        [2**100],
        [0],
    ],
)
def test_scaled_integers_write_the_to_bytes_bytes(type_name: str, column: list[int]) -> None:
    kind = scaled_integer(get_from_name(type_name))
    dest = bytearray()
    kind._write_column_binary(column, dest, context())
    assert bytes(dest) == to_bytes_reference(column, kind.byte_size)


@pytest.mark.parametrize(
    "column", [[None, None, None], [Decimal(0), None], [None, Decimal("1.5"), None], [0, 0]]
)
def test_scaled_decimals_of_nothing_write_zeros_as_before(column: list[Decimal | None]) -> None:
    kind = insert_types(["Nullable(Decimal(38, 18))"])[0]
    dest = bytearray()
    kind._write_column_binary(column, dest, context())
    scaled = [int(value * 10**18) if value else 0 for value in column]
    assert bytes(dest) == to_bytes_reference(scaled, 16)


class Timed:
    def __init__(self, moment: datetime) -> None:
        self.event_time = moment


def old_check(bounds: TimeBounds, event: Timed, record: float | None, now: float) -> str | None:
    """TimeBounds.check before its seconds were precomputed: the refusal's reason, or None."""
    reference = now if record is None else min(record, now)
    seconds = event.event_time.timestamp()
    if seconds > reference + bounds.max_future.total_seconds():
        return "ahead"
    if seconds < reference - bounds.max_age.total_seconds():
        return "before"
    return None


def test_time_bounds_decide_as_before_at_every_edge() -> None:
    bounds = TimeBounds(timedelta(days=10), timedelta(hours=1))
    now = datetime(2026, 12, 7, 13, 0, tzinfo=UTC).timestamp()
    tiny = timedelta(microseconds=1)
    for record in (None, now, now - 30.5, now + 30.5, now - 86_400 * 11):
        reference = datetime.fromtimestamp(now if record is None else min(record, now), UTC)
        for edge in (reference + timedelta(hours=1), reference - timedelta(days=10), reference):
            for moment in (edge - tiny, edge, edge + tiny):
                event = Timed(moment)
                expected = old_check(bounds, event, record, now)
                try:
                    bounds.check(event, record, now)  # type: ignore[arg-type]
                    found = None
                except EventError as exc:
                    found = "ahead" if "ahead" in exc.reason else "before"
                assert found == expected, (record, moment)
    assert {
        old_check(bounds, Timed(m), None, now)
        for m in (
            datetime.fromtimestamp(now, UTC) + timedelta(hours=2),
            datetime.fromtimestamp(now, UTC) - timedelta(days=11),
        )
    } == {"ahead", "before"}
