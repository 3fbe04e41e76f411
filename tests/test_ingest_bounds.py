"""HTTP ingest validates an event exactly as the worker will (docs/ingest.md): its time bounds
too (spendstream.event_bounds, one definition), so ``POST /events`` never answers "accepted" for
an event the worker then dead-letters. Unit tests: an in-process app, a recording publisher."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient

from spendstream.api.errors import install_error_mapping
from spendstream.auth.roles import Principal, Role
from spendstream.config import HttpIngestSettings
from spendstream.event_bounds import TimeBounds
from spendstream.ingest.http import ingest_router, validate
from spendstream.pricing import default_pricer
from spendstream.producers.partitioning import Item
from spendstream.stream.processor import BatchProcessor, RawMessage
from tests.support.http_app import TokenAuthenticator

BOUNDS = TimeBounds(timedelta(days=10), timedelta(hours=1))
ADMIN = Principal("root", Role.ADMIN)


def event(name: str, moment: datetime) -> dict[str, object]:
    return {
        "event_id": name,
        "event_time": moment.isoformat().replace("+00:00", "Z"),
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 10,
        "output_tokens": 1,
        "tags": {"team": "search"},
    }


class Recorder:
    def __init__(self) -> None:
        self.items: list[Item] = []

    def publish(self, items: Sequence[Item]) -> list[bool]:
        self.items.extend(items)
        return [True] * len(items)

    def retry_after(self) -> float:
        return 1.0


def test_http_refuses_what_the_worker_would_dead_letter_for_its_time() -> None:
    now = datetime.now(UTC)
    sent = {
        "now": now,
        "too-new": now + timedelta(hours=2),
        "too-old": now - timedelta(days=11),
        "next-year": datetime(2099, 6, 1, tzinfo=UTC),
    }
    items = [(index, event(name, moment)) for index, (name, moment) in enumerate(sent.items())]
    events, errors = validate(items, ADMIN, "team", BOUNDS)
    assert [e.event_id for _, e, _ in events] == ["now"]
    refused = {error.index: error.reason for error in errors}
    assert "worker.event_max_future_s" in refused[1] and "worker.event_max_age_days" in refused[2]
    assert "worker.event_max_future_s" in refused[3]
    # The worker, given the same payloads as records published now, dead-letters the same ones
    # for the same reasons (one definition of the bounds).
    worker = BatchProcessor(default_pricer(), BOUNDS)
    messages = [
        RawMessage(json.dumps(item).encode(), "usage", 0, index, False, now.timestamp())
        for index, item in items
    ]
    batch = worker.process(messages)
    assert [entry.event.event_id for entry in batch.entries] == ["now"]
    assert len(batch.dead_letters) == 3
    for letter in batch.dead_letters:
        assert letter.reason.split(" is more than")[1].split("record's time")[0] in str(refused)


def test_the_route_answers_the_refusal_with_the_workers_reason() -> None:
    publisher = Recorder()
    app = FastAPI()
    app.state.authenticator = TokenAuthenticator({"admin": ADMIN})
    install_error_mapping(app)
    app.include_router(ingest_router(publisher, HttpIngestSettings(), "team", None, BOUNDS))
    body = [event("ok", datetime.now(UTC)), event("future", datetime(2027, 6, 1, tzinfo=UTC))]
    with TestClient(app) as client:
        answer = client.post("/api/v1/events", json=body, headers={"Authorization": "Bearer admin"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1 and answer.json()["refused"] == 1
    [error] = answer.json()["errors"]
    assert error["index"] == 1 and "worker.event_max_future_s" in error["reason"]
    assert len(publisher.items) == 1  # the refused event is never published
