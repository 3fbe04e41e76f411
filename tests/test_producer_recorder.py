"""Recorder behaviour that needs no broker: validation, tags, spilling, counters, send_json_lines.

The bootstrap address points at a closed loopback port, so every event ends in the spool.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from spendstream.config import Settings
from spendstream.embedded import free_port
from spendstream.events import UsageEvent, parse_event
from spendstream.producers import Recorder, RecorderOptions, send_json_lines, tags
from spendstream.producers.spool import Spool

FIXTURES = Path(__file__).parent / "fixtures" / "responses"


def offline_recorder(tmp_path: Path, **options: Any) -> Recorder:
    """A Recorder whose broker address has nothing listening."""
    return Recorder(
        bootstrap_servers=f"127.0.0.1:{free_port()}",
        spool_dir=str(tmp_path / "spool"),
        connect_timeout_ms=200,
        **options,
    )


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[Recorder]:
    with offline_recorder(tmp_path, default_tags={"env": "test", "team": "core"}) as rec:
        yield rec
    assert rec.stats().sender_errors == 0


def spooled_events(spool_dir: Path) -> list[UsageEvent]:
    spool = Spool(spool_dir, max_bytes=1 << 30)
    events = [UsageEvent.model_validate_json(record.value) for record in spool.read(100_000)]
    spool.close()
    return events


def test_keyword_form_extracts_usage_and_merges_tags(recorder: Recorder, tmp_path: Path) -> None:
    response = json.loads((FIXTURES / "anthropic_message.json").read_text())
    with tags(team="search", feature="qa"):
        event_id = recorder.record(
            provider="anthropic",
            model="claude-sonnet-4",
            usage=response,
            tags={"user": "u1"},
            latency_ms=812.5,
            output_tokens=400,  # explicit fields win over extracted ones
        )
    assert event_id is not None
    recorder.close()
    [event] = spooled_events(tmp_path / "spool")
    assert event.event_id == event_id
    assert event.tags == {"env": "test", "team": "search", "feature": "qa", "user": "u1"}
    assert (event.input_tokens, event.cache_write_tokens, event.output_tokens) == (
        188107,
        188086,
        400,
    )
    assert event.response_model == "claude-sonnet-4-20250514"
    assert event.latency_ms == 812.5
    stats = recorder.stats()
    assert (stats.recorded, stats.tag_conflicts, stats.dropped_total) == (1, 1, 0)


def test_event_form_keeps_id_and_time_and_gets_scoped_tags(
    recorder: Recorder, tmp_path: Path
) -> None:
    event = UsageEvent(provider="openai", model="gpt-4o", input_tokens=3, tags={"feature": "x"})
    with tags(app="web"):
        assert recorder.record(event) == event.event_id
    recorder.close()
    [stored] = spooled_events(tmp_path / "spool")
    assert stored.event_time == event.event_time
    assert stored.tags == {"env": "test", "team": "core", "app": "web", "feature": "x"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model": "m"},  # no provider
        {"provider": "openai", "model": "m", "tags": {"Bad Key": "x"}},
        {"provider": "openai", "model": "m", "usage": {"nothing": 1}},
        {"provider": "openai", "model": "m", "input_tokens": 1, "cache_read_tokens": 5},
        {"provider": "openai", "model": "m", "no_such_field": 1},
        {"provider": "openai", "model": "m", "tags": {"k": "v" * 300}},
    ],
)
def test_invalid_input_is_dropped_and_counted_never_raised(
    recorder: Recorder, kwargs: dict[str, object]
) -> None:
    assert recorder.record(**kwargs) is None  # type: ignore[arg-type]
    stats = recorder.stats()
    assert stats.dropped == {"invalid": 1}
    assert stats.recorded == 0


def test_full_queue_spills_to_the_spool_without_loss(tmp_path: Path) -> None:
    with offline_recorder(tmp_path, queue_size=1) as recorder:
        ids = [recorder.record(provider="openai", model="m", input_tokens=i) for i in range(300)]
    stats = recorder.stats()
    assert (stats.recorded, stats.spooled, stats.dropped_total) == (300, 300, 0)
    assert stats.sender_errors == 0
    assert sorted(e.event_id for e in spooled_events(tmp_path / "spool")) == sorted(ids)  # type: ignore[type-var]


def test_spool_full_drops_loudly(tmp_path: Path) -> None:
    with offline_recorder(tmp_path, spool_max_bytes=4096) as recorder:
        for _ in range(100):
            recorder.record(provider="openai", model="m", input_tokens=1)
    stats = recorder.stats()
    assert stats.dropped.get("spool_full", 0) > 0
    assert stats.spooled + stats.dropped["spool_full"] == 100
    assert stats.spool_bytes <= 4096
    assert stats.sender_errors == 0


def test_send_json_lines_reports_each_bad_line(recorder: Recorder) -> None:
    good = [UsageEvent(provider="openai", model=m).model_dump_json() for m in ("a", "b")]
    lines = [good[0], "", "{not json", '{"provider": "openai"}', "[1]", good[1]]
    report = send_json_lines(recorder, lines)
    assert report.accepted == 2
    assert report.blank == 1
    assert [error.line for error in report.errors] == [3, 4, 5]
    assert "not valid JSON" in report.errors[0].reason
    assert "model" in report.errors[1].reason
    assert not report.ok


def test_send_json_lines_stamps_a_line_without_id_or_time_like_record(
    recorder: Recorder, tmp_path: Path
) -> None:
    bare = '{"provider": "openai", "model": "gpt-4o", "input_tokens": 5}'
    timed = '{"provider": "openai", "model": "gpt-4o", "event_time": "2026-12-01T10:00:00Z"}'
    report = send_json_lines(recorder, [bare, bare, timed])
    assert (report.accepted, report.stamped, report.errors) == (3, 2, [])
    recorder.close()
    sent = spooled_events(tmp_path / "spool")
    # Each bare line is a new call (its own id, the current time); the timed one keeps the id
    # derived from its content, so re-sending it stays one event.
    assert len({event.event_id for event in sent}) == 3
    assert sent[2].event_id == parse_event(timed.encode()).event_id


def test_stats_are_exposed_to_prometheus(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    settings = Settings()
    with Recorder.from_settings(
        settings,
        bootstrap_servers=f"127.0.0.1:{free_port()}",
        spool_dir=str(tmp_path / "spool"),
        connect_timeout_ms=200,
        prometheus_registry=registry,
    ) as recorder:
        recorder.record(provider="openai", model="m")
        recorder.record(model="m")
    text = generate_latest(registry).decode()
    assert "spendstream_producer_recorded_total 1.0" in text
    assert 'spendstream_producer_dropped_total{reason="invalid"} 1.0' in text
    assert recorder.options.topic == settings.kafka.usage_topic


def test_options_from_settings_use_kafka_and_producer_sections() -> None:
    settings = Settings.model_validate(
        {"kafka": {"bootstrap_servers": "k:1", "usage_topic": "t"}, "producer": {"linger_ms": 7}}
    )
    options = RecorderOptions.from_settings(settings, partition_key_tag=None)
    assert (options.bootstrap_servers, options.topic, options.linger_ms) == ("k:1", "t", 7)
    assert options.partition_key_tag is None


def test_record_after_close_is_dropped_and_counted(recorder: Recorder) -> None:
    recorder.close()
    assert recorder.record(provider="openai", model="m") is None
    assert recorder.stats().dropped == {"closed": 1}
