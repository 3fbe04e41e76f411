"""Poison messages against the real worker (issue 18; issue 10 defects 2 and 3): the four
reproductions no longer hold the stream, time bounds keep rollups equal to the ledger at the
edges, id-less re-sends count once, and the dead-letter limit stops the worker loudly."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from kafka import KafkaProducer

from spendstream.embedded import TansuBroker
from spendstream.events import UsageEvent
from spendstream.stream.deadletter import MAX_LETTER_BYTES, DeadLetter
from spendstream.stream.pipeline import EXIT_STOPPED
from tests.support.traffic import USAGE_TOPIC, read_dead_letters
from tests.support.worker import WorkerProcess, wait_until, write_config

pytestmark = pytest.mark.integration

REPRO_FIELDS = '"schema_version":1,"event_id":"{id}","provider":"openai","model":"gpt-4o"'


def repro(event_id: str, event_time: str) -> bytes:
    fields = REPRO_FIELDS.format(id=event_id)
    return ("{" + fields + f',"event_time":"{event_time}"' + "}").encode()


# The four single messages that used to stop ingestion for good, with the reason expected now.
REPRODUCTIONS: dict[str, tuple[bytes, str]] = {
    "offset overflows": (repro("r1", "0001-01-01T00:00:00+01:00"), "outside the supported range"),
    "offset overflows up": (
        repro("r1b", "9999-12-31T23:59:59-00:01"),
        "outside the supported range",
    ),
    "year before 1000": (repro("r2", "0001-01-01T00:00:00Z"), "outside the supported range"),
    "window overflows": (repro("r3", "9999-12-31T23:59:59Z"), "outside the supported range"),
    "control characters": (
        b'{"provider":"openai","model":"' + b"\x01" * 200_000 + b'"}',
        "bytes; the limit is 16384",
    ),
    "escaped control characters": (
        b'{"provider":"openai","model":"' + b"\\u0001" * 100_000 + b'"}',
        "bytes; the limit is 16384",
    ),
    "quotes": (b'"' * 520_000, "bytes; the limit is 16384"),
}


def valid(event_id: str, moment: datetime | None = None, **fields: object) -> UsageEvent:
    return UsageEvent(
        event_id=event_id,
        event_time=moment or datetime.now(UTC),
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=1_000,
        output_tokens=100,
        tags={"team": "search"},
        **fields,  # type: ignore[arg-type]
    )


def wire(event_id: str, event_time: str) -> bytes:
    """A valid event's bytes with ``event_time`` as written (it may be out of bounds)."""
    fields = json.loads(valid(event_id).to_json_bytes())
    return json.dumps({**fields, "event_time": event_time}).encode()


def send(bootstrap: str, values: Sequence[bytes | tuple[bytes, float]]) -> None:
    """Publish in order; a ``(value, seconds)`` pair sets the record's timestamp."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=2_000_000)
    for item in values:
        value, stamp = item if isinstance(item, tuple) else (item, None)
        producer.send(USAGE_TOPIC, value, timestamp_ms=None if stamp is None else int(stamp * 1000))
    producer.flush()
    producer.close()


def has_event(worker: WorkerProcess, event_id: str) -> bool:
    found = worker.query(
        "SELECT count() FROM ledger FINAL WHERE event_id = {id:String}", {"id": event_id}
    )
    return int(found.rows[0][0]) == 1


def unique_letters(bootstrap: str) -> dict[tuple[str, int, int, int | None], DeadLetter]:
    """Letters deduplicated by source (the documented key); asserts repeats are identical."""
    letters: dict[tuple[str, int, int, int | None], DeadLetter] = {}
    for letter in read_dead_letters(bootstrap):
        seen = letters.setdefault(letter.dedup_key(), letter)
        assert seen.payload_sha256 == letter.payload_sha256
    return letters


def test_each_reproduction_is_dead_lettered_and_the_next_event_arrives(
    broker: TansuBroker, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    for number, (name, (bad, _)) in enumerate(REPRODUCTIONS.items()):
        send(broker.bootstrap_servers, [bad, valid(f"after-{number}").to_json_bytes()])
        wait_until(partial(has_event, worker, f"after-{number}"), 60, f"the event after {name}")

    letters = list(unique_letters(broker.bootstrap_servers).values())
    assert len(letters) == len(REPRODUCTIONS)
    by_sha = {letter.payload_sha256: letter for letter in letters}
    for name, (bad, reason) in REPRODUCTIONS.items():
        letter = by_sha[DeadLetter.for_payload(bad, "", "", 0, 0).payload_sha256]
        assert reason in letter.reason, (name, letter.reason)
        assert letter.encoded_size() <= MAX_LETTER_BYTES
        assert bad.startswith(letter.raw_payload()), name
    assert int(worker.scalar("SELECT count() FROM ledger FINAL")) == len(REPRODUCTIONS)


def rollups_equal_ledger(worker: WorkerProcess) -> None:
    """Per minute, hour and day: events and cost in the rollup = in the ledger."""
    for unit in ("minute", "hour", "day"):
        ledger = worker.query(
            f"SELECT toString(toStartOfInterval(event_time, INTERVAL 1 {unit})) AS w, count(), "
            "toString(sum(cost_total)) FROM ledger FINAL GROUP BY w ORDER BY w"
        ).rows
        rollup = worker.query(
            f"SELECT toString(window_start) AS w, sum(events), toString(sum(cost_total)) "
            f"FROM rollup_{unit} FINAL GROUP BY w ORDER BY w"
        ).rows
        assert [list(map(str, row)) for row in rollup] == [list(map(str, r)) for r in ledger], unit


def test_time_bounds_edges_and_id_less_resends(
    tmp_path: Path, broker: TansuBroker, start_worker: Callable[..., WorkerProcess], chdb_dsn: str
) -> None:
    config = write_config(
        tmp_path / "bounds.toml",
        broker.bootstrap_servers,
        chdb_dsn,
    )
    config.write_text(
        config.read_text().replace(
            "[worker]", "[worker]\nevent_max_age_days = 30\nevent_max_future_s = 3000000000"
        )
    )
    worker = start_worker(config)
    record = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    epoch_day = datetime(1970, 1, 2, tzinfo=UTC).timestamp()
    ms = timedelta(milliseconds=1)
    accepted = {
        "oldest": (record - timedelta(days=30), record.timestamp()),
        "epoch": (datetime(1970, 1, 1, tzinfo=UTC), epoch_day),
        "last": (datetime(2100, 1, 1, tzinfo=UTC) - ms, record.timestamp()),
        "leap": (datetime(2016, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), epoch_day),
    }
    refused = {
        "too-old": (
            (record - timedelta(days=30) - ms).isoformat(),
            record.timestamp(),
            "days before",
        ),
        "before-epoch": ("1969-12-31T23:59:59.999Z", epoch_day, "supported range"),
        "year-2100": ("2100-01-01T00:00:00Z", record.timestamp(), "supported range"),
    }
    values: list[bytes | tuple[bytes, float]] = [
        (valid(name, moment).to_json_bytes(), stamp) for name, (moment, stamp) in accepted.items()
    ]
    # The leap second as written on the wire (normalised to 23:59:59.999), judged in 2017.
    leap = json.loads(valid("leap").to_json_bytes())
    leap["event_time"] = "2016-12-31T23:59:60Z"
    values[-1] = (json.dumps(leap).encode(), datetime(2017, 1, 1, tzinfo=UTC).timestamp())
    values += [(wire(name, moment), stamp) for name, (moment, stamp, _) in refused.items()]
    # An id-less event sent three times (once spelled differently): one event.
    id_less = {
        "event_time": (record - timedelta(minutes=5)).isoformat(),
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 4_321,
        "tags": {"team": "search"},
    }
    respelled = {
        **id_less,
        "event_time": (record - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "batch": False,
    }
    values += [json.dumps(id_less).encode()] * 2 + [json.dumps(respelled, indent=1).encode()]
    send(broker.bootstrap_servers, values)
    send(broker.bootstrap_servers, [valid("marker").to_json_bytes()])
    wait_until(lambda: has_event(worker, "marker"), 60, "the marker event")

    ids = {row[0] for row in worker.query("SELECT event_id FROM ledger FINAL").rows}
    assert len(ids) == len(accepted) + 2  # the id-less event once, and the marker
    assert set(accepted) | {"marker"} <= ids
    assert int(worker.scalar("SELECT count() FROM ledger FINAL WHERE input_tokens = 4321")) == 1
    leap_time = worker.scalar("SELECT toString(event_time) FROM ledger FINAL WHERE event_id='leap'")
    assert leap_time == "2016-12-31 23:59:59.999"
    letters = {
        letter.raw_payload(): letter for letter in unique_letters(broker.bootstrap_servers).values()
    }
    assert len(letters) == len(refused)
    for name, (moment, _, reason) in refused.items():
        assert reason in letters[wire(name, moment)].reason, name
    rollups_equal_ledger(worker)


def test_dlq_limit_stops_the_worker_loudly(
    tmp_path: Path, broker: TansuBroker, start_worker: Callable[..., WorkerProcess], chdb_dsn: str
) -> None:
    config = write_config(tmp_path / "limit.toml", broker.bootstrap_servers, chdb_dsn)
    config.write_text(config.read_text().replace("[worker]", "[worker]\ndlq_max_consecutive = 40"))
    worker = start_worker(config, name="limited")
    send(broker.bootstrap_servers, [b"{broken" for _ in range(60)])
    assert worker.process is not None
    assert worker.process.wait(60) == EXIT_STOPPED
    worker.process = None
    log = (tmp_path / "limited.log").read_text()
    assert "worker stopping on purpose" in log
    assert "events in a row were dead-lettered" in log
