"""The round-2 event fields: optional and backward compatible, filled by the extractors and the
SDK, priced (response-cached events cost nothing), stored by migration 50 (also on a ledger
written by the previous schema) and carried end to end through a real worker."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spendstream.embedded import TansuBroker
from spendstream.events import EventError, UsageEvent, parse_event
from spendstream.pricing import Pricer, default_pricer
from spendstream.producers import Recorder, extract_usage, prompt_hash
from spendstream.sinks.client import connect
from spendstream.sinks.entry import LEDGER_COLUMNS, LedgerEntry
from spendstream.sinks.ledger import LedgerWriter
from spendstream.sinks.migrations import AGENT_COLUMNS, INSIGHT_COLUMNS, PLATFORM_COLUMNS
from spendstream.sinks.migrations import migrate as apply
from spendstream.sinks.rerating import reprice
from spendstream.worker.schema import MIGRATIONS, migrate
from tests.support.ledger_data import generate
from tests.support.worker import WorkerProcess

V1 = {
    "event_time": "2026-11-28T10:00:00Z",
    "provider": "openai",
    "model": "gpt-4o",
    "input_tokens": 120,
    "output_tokens": 30,
    "tags": {"team": "search"},
}


def test_v1_events_stay_valid_with_the_same_derived_id() -> None:
    event = parse_event(json.dumps(V1).encode())
    # the id the previous schema derived for this event (main before round 2)
    assert event.event_id == "c9fb4b25ceda48e79767752a645b9cde"
    assert (event.prompt_hash, event.response_cached, event.finish_reason, event.max_tokens) == (
        None,
        False,
        None,
        None,
    )
    assert b"prompt_hash" not in event.to_json_bytes()  # absent fields are not sent


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("prompt_hash", "abc", "prompt_hash"),
        ("prompt_hash", "has spaces in it", "prompt_hash"),
        ("response_cached", "yes", "response_cached"),
        ("response_cached", 1, "response_cached"),
        ("max_tokens", 0, "max_tokens"),
        ("max_tokens", 1.5, "max_tokens"),
        ("finish_reason", "", "finish_reason"),
    ],
)
def test_new_fields_are_validated(field: str, value: Any, reason: str) -> None:
    with pytest.raises(EventError, match=reason):
        parse_event(json.dumps({**V1, field: value}).encode())


def test_new_fields_round_trip() -> None:
    payload = {**V1, "prompt_hash": "f" * 32, "response_cached": True}
    event = parse_event(
        json.dumps({**payload, "finish_reason": "Length", "max_tokens": 64}).encode()
    )
    assert (event.finish_reason, event.max_tokens) == ("length", 64)
    assert parse_event(event.to_json_bytes()) == event


@pytest.mark.parametrize(
    ("response", "provider", "reason"),
    [
        (
            {"choices": [{"finish_reason": "length"}], "usage": {"prompt_tokens": 5}},
            "openai",
            "length",
        ),
        ({"stop_reason": "max_tokens", "usage": {"input_tokens": 5}}, "anthropic", "length"),
        ({"stop_reason": "tool_use", "usage": {"input_tokens": 5}}, "anthropic", "tool_calls"),
        (
            {"candidates": [{"finishReason": "SAFETY"}], "usageMetadata": {"promptTokenCount": 4}},
            "gemini",
            "content_filter",
        ),
        ({"stopReason": "end_turn", "usage": {"inputTokens": 4}}, "bedrock", "stop"),
        (
            {"incomplete_details": {"reason": "max_output_tokens"}, "usage": {"input_tokens": 4}},
            "openai",
            "length",
        ),
        ({"usage": {"prompt_tokens": 5}}, "openai", None),
    ],
)
def test_extractors_fill_finish_reason(
    response: dict[str, Any], provider: str, reason: str | None
) -> None:
    extracted = extract_usage(response, provider)
    assert extracted.finish_reason == reason
    assert extracted.event_fields().get("finish_reason") == reason


def test_finish_reason_of_an_anthropic_stream() -> None:
    chunks = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 9, "output_tokens": 1}}},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens"},
            "usage": {"output_tokens": 7},
        },
    ]
    extracted = extract_usage(chunks, "anthropic")
    assert (extracted.finish_reason, extracted.output_tokens) == ("length", 7)


def test_prompt_hash_normalises_and_never_contains_the_text() -> None:
    one = [{"role": "user", "content": "Summarise  this\nticket"}]
    two = [{"content": " Summarise this ticket ", "role": "user"}]
    assert prompt_hash(one) == prompt_hash(two)
    assert prompt_hash(one) != prompt_hash([{"role": "user", "content": "Summarise that ticket"}])
    assert prompt_hash(one) != prompt_hash(one, system="be brief")
    assert len(prompt_hash("x")) == 32 and "Summarise" not in prompt_hash(one)


def test_response_cached_events_cost_nothing_and_record_the_avoided_cost() -> None:
    pricer = default_pricer()
    event = parse_event(json.dumps({**V1, "cache_read_tokens": 20}).encode())
    paid = pricer.rate(event)
    served = pricer.rate(event.model_copy(update={"response_cached": True}))
    assert served.priced and served.price_ref == paid.price_ref
    assert (served.cost_total, served.cost_avoided) == (0, paid.cost_total)
    assert paid.cost_avoided == 0 and paid.cost_total > 0
    unknown = event.model_copy(update={"model": "no-such", "response_cached": True})
    assert not pricer.rate(unknown).priced


def _totals(client: Any) -> tuple[Any, ...]:
    return tuple(
        client.query(
            "SELECT count(), sum(cost_total), sum(input_tokens), sum(cost_cache_read), "
            "uniqExact(event_id) FROM ledger FINAL"
        ).result_rows[0]
    )


@pytest.mark.storage
def test_migration_50_on_a_ledger_written_by_the_previous_schema(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'clickhouse'}", "spendstream")
    # 80: platform, region; 70 (lean drivers) keys the drivers by response_cached (from 50);
    # 75 (insight cells; 78 and 79 add to them) and 76 (prompt sightings; 77, its repeats,
    # reads them) and 71 (team repeats) read 50's fields; 1100, 1101, 1102: agents; 1008: a view
    # writing 70's drivers columns
    later = (50, 70, 71, 75, 76, 77, 78, 79, 80, 1008, 1100, 1101, 1102)
    apply(client, [m for m in MIGRATIONS if m.version not in later])
    newer = len(INSIGHT_COLUMNS) + len(PLATFORM_COLUMNS) + len(AGENT_COLUMNS)
    old_columns = LEDGER_COLUMNS[:-newer]
    pricer = default_pricer()
    rows = [LedgerEntry(e, pricer.rate(e)).row(1, e.event_time) for e in generate(2_000)]
    client.insert("ledger", [row[: len(old_columns)] for row in rows], column_names=old_columns)
    before = _totals(client)
    assert migrate(client) == list(later)
    assert _totals(client) == before
    defaults = client.query(
        "SELECT uniqExact(prompt_hash), countIf(response_cached), uniqExact(finish_reason), "
        "countIf(max_tokens IS NOT NULL), sum(cost_avoided) FROM ledger FINAL"
    ).result_rows[0]
    assert defaults == (1, 0, 1, 0, 0)
    # the migrated ledger takes new rows, and re-rating keeps their new fields
    event = parse_event(
        json.dumps(
            {**V1, "prompt_hash": "e" * 32, "finish_reason": "length", "max_tokens": 9}
        ).encode()
    )
    LedgerWriter(client, 1).write([LedgerEntry(event, pricer.rate(event))])
    moment = event.event_time
    deal = Pricer.from_config(
        {"overrides": [{"name": "deal", "provider": "openai", "model": "gpt-4o", "discount": 0.5}]}
    )
    done = reprice(client, deal, moment - timedelta(hours=1), moment + timedelta(hours=1))
    assert done.changed == 1  # the re-rated row was written again, from event_from_row
    stored = client.query(
        "SELECT prompt_hash, finish_reason, max_tokens, price_version FROM ledger FINAL "
        "WHERE event_id = {id:String}",
        parameters={"id": event.event_id},
    ).result_rows
    assert stored == [("e" * 32, "length", 9, done.version)]
    assert migrate(client) == []
    client.close()


@pytest.mark.integration
def test_new_fields_end_to_end_through_a_real_worker(
    tmp_path: Path, broker: TansuBroker, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    messages = [{"role": "user", "content": "Secret customer text 4411"}]
    response = {
        "model": "gpt-4o-2024-08-06",
        "choices": [{"finish_reason": "length"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 64},
    }
    with Recorder(
        bootstrap_servers=broker.bootstrap_servers, spool_dir=str(tmp_path / "spool")
    ) as recorder:
        first = recorder.record(
            provider="openai",
            model="gpt-4o",
            usage=response,
            prompt=messages,
            max_tokens=64,
            tags={"team": "search", "feature": "qa"},
        )
        second = recorder.record(
            provider="openai",
            model="gpt-4o",
            usage=response,
            prompt=messages,
            response_cached=True,
            tags={"team": "search", "feature": "qa"},
        )
        assert recorder.flush(30)
    worker.wait_for_ledger_count(2)
    result = worker.query(
        "SELECT event_id, prompt_hash, response_cached, finish_reason, max_tokens, cost_total, "
        "cost_avoided FROM ledger FINAL ORDER BY event_id"
    )
    rows = {row[0]: row[1:] for row in result.rows}
    expected_hash = prompt_hash(messages)
    cost = (
        default_pricer()
        .rate(UsageEvent(provider="openai", model="gpt-4o", input_tokens=50, output_tokens=64))
        .cost_total
    )
    assert rows[first][:4] == [expected_hash, False, "length", 64]
    assert Decimal(rows[first][4]) == cost and Decimal(rows[first][5]) == 0
    assert rows[second][:4] == [expected_hash, True, "length", None]
    assert Decimal(rows[second][4]) == 0 and Decimal(rows[second][5]) == cost
    everything = worker.query("SELECT * FROM ledger FINAL")
    assert "Secret customer text" not in json.dumps(everything.rows, default=str)
