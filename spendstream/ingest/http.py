"""``POST /api/v1/events``: usage events over HTTP for services without a Kafka client.

Body, chosen by ``Content-Type``:

- ``application/json``: one event (a JSON object) or a JSON array of events;
- ``application/x-ndjson`` (also ``application/jsonl``): one event per line, blank lines skipped.

Each event is validated on its own, exactly as the worker validates a wire payload
(:func:`spendstream.events.parse_event`, JSON mode); the answer
lists, per event, what was accepted (``index``, ``event_id``) and why anything was refused
(``index``, ``reason``). ``index`` is the position in the array, or the 0-based line number.

Guarantees (as the SDK's): accepted events are published to the usage topic with ``acks=all``
and the answer is sent only after the broker acknowledged them. Nothing is reported accepted that
was not stored:

==========  ===================================================================================
status      meaning
==========  ===================================================================================
200         every valid event stored (some may be refused: see ``errors``)
422         nothing valid in the body (every event refused)
400 / 415   the body is not JSON / NDJSON, or the content type is neither
413         body larger than ``ingest.http.max_body_bytes`` or more than ``max_events`` events
429         too many events awaiting the broker (``Retry-After``): retry the whole request
503         the broker is unreachable (``Retry-After``): ``events`` lists what *was* stored,
            ``errors`` what was not; re-send only those (set ``event_id``, or rely on the id
            :func:`~spendstream.events.parse_event` gives an id-less event, for safe retries)
==========  ===================================================================================

A token limited to some teams may only send events tagged with one of them; when it has exactly
one team, events without a ``team`` tag get it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from spendstream.auth.http import require
from spendstream.auth.roles import Permission, Principal
from spendstream.config import HttpIngestSettings
from spendstream.errors import InputError
from spendstream.event_bounds import TimeBounds
from spendstream.events import EventError, UsageEvent, parse_event
from spendstream.ingest.publisher import EventPublisher
from spendstream.jsonbody import JsonBodyError, decode_json
from spendstream.producers.partitioning import Item, encode_event

JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/ndjson")
# The body as the OpenAPI document shows it (the route reads it raw, so FastAPI cannot infer
# it); each event's fields are docs/event-format.md's.
EVENTS_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [
                    {"type": "object", "description": "one usage event"},
                    {"type": "array", "items": {"type": "object"}, "description": "events"},
                ]
            }
        },
        "application/x-ndjson": {"schema": {"type": "string", "description": "one per line"}},
    },
}


class AcceptedEvent(BaseModel):
    index: int
    event_id: str


class RefusedEvent(BaseModel):
    index: int
    reason: str


class IngestAnswer(BaseModel):
    """The answer to ``POST /api/v1/events`` (also on 503, with what was stored)."""

    accepted: int
    refused: int
    events: list[AcceptedEvent]
    errors: list[RefusedEvent]


class BodyError(InputError):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def ingest_router(
    publisher: EventPublisher,
    settings: HttpIngestSettings,
    partition_key_tag: str | None = "team",
    note: Callable[[UsageEvent, bytes], None] | None = None,
    bounds: TimeBounds | None = None,
) -> APIRouter:
    """The ingest routes, publishing through ``publisher`` (the worker or API passes one
    :class:`~spendstream.ingest.publisher.KafkaEventPublisher` built from the settings).

    ``note`` is told every valid event before it is published (the worker's admission view:
    ``POST /api/v1/admit`` then counts events ingested here until the ledger holds them).
    ``bounds`` are the worker's event-time bounds (``worker.event_max_age_days`` and
    ``event_max_future_s``; their defaults when None): an event outside them is refused here
    with the worker's reason, never accepted and then dead-lettered."""
    time_bounds = bounds or TimeBounds()

    def validated(
        items: list[tuple[int, Any]], caller: Principal
    ) -> tuple[list[tuple[int, UsageEvent, Item]], list[RefusedEvent]]:
        events, errors = validate(items, caller, partition_key_tag, time_bounds)
        if note is not None:
            for _, event, (_, payload) in events:
                note(event, payload)
        return events, errors

    router = APIRouter(tags=["ingest"])

    @router.post(
        "/api/v1/events",
        response_model=IngestAnswer,
        openapi_extra={"requestBody": EVENTS_BODY},
    )
    async def ingest_events(
        request: Request, caller: Annotated[Principal, Depends(require(Permission.INGEST))]
    ) -> JSONResponse:
        content_type = request.headers.get("content-type", "")
        try:
            body = await read_body(request, settings.max_body_bytes)
            # Parsing and validating thousands of events is CPU work: keep it off the loop.
            items = await run_in_threadpool(split_items, body, content_type, settings.max_events)
        except BodyError as exc:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status)
        events, errors = await run_in_threadpool(validated, items, caller)
        # PublisherBusy (a BusyError) is answered 429 with Retry-After by spendstream.api.errors.
        stored = await run_in_threadpool(publisher.publish, [item for _, _, item in events])
        accepted = [
            AcceptedEvent(index=index, event_id=event.event_id)
            for (index, event, _), ok in zip(events, stored, strict=True)
            if ok
        ]
        unstored = [
            RefusedEvent(index=index, reason="not stored: the broker is unreachable; retry")
            for (index, _, _), ok in zip(events, stored, strict=True)
            if not ok
        ]
        answer = IngestAnswer(
            accepted=len(accepted),
            refused=len(errors) + len(unstored),
            events=accepted,
            errors=sorted(errors + unstored, key=lambda error: error.index),
        )
        content: dict[str, Any] = answer.model_dump()
        if unstored:
            content["detail"] = "the event broker is unreachable; re-send the events in errors"
            retry = str(round(publisher.retry_after()))
            return JSONResponse(content, status_code=503, headers={"Retry-After": retry})
        if items and not accepted:
            content["detail"] = "no event in the body is valid: errors says why, per event"
            return JSONResponse(content, status_code=422)
        return JSONResponse(content, status_code=200)

    return router


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes (413) without reading it all."""
    too_large = BodyError(413, f"body larger than {limit} bytes (ingest.http.max_body_bytes)")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def split_items(body: bytes, content_type: str, max_events: int) -> list[tuple[int, Any]]:
    """``(index, item)`` pairs: parsed JSON values, or raw bytes for NDJSON lines.

    Raises :class:`BodyError` (400, 413, 415) for a body that is not a batch of events."""
    items = _split(body, content_type)
    if len(items) > max_events:
        raise BodyError(
            413,
            f"{len(items)} events in one request; the limit is {max_events} "
            "(ingest.http.max_events): split the batch",
        )
    return items


def _split(body: bytes, content_type: str) -> list[tuple[int, Any]]:
    media = content_type.split(";")[0].strip().lower()
    if media in NDJSON_TYPES:
        return [(index, line) for index, line in enumerate(body.split(b"\n")) if line.strip()]
    if media not in JSON_TYPES:
        raise BodyError(
            415,
            f"Content-Type {media or '(none)'!r} is not supported: send application/json "
            "(one event or an array) or application/x-ndjson (one event per line)",
        )
    try:
        document = decode_json(body)
    except JsonBodyError as exc:
        raise BodyError(400, str(exc)) from None
    if isinstance(document, list):
        return list(enumerate(document))
    return [(0, document)]


def validate(
    items: list[tuple[int, Any]],
    caller: Principal,
    partition_key_tag: str | None,
    bounds: TimeBounds | None = None,
) -> tuple[list[tuple[int, UsageEvent, Item]], list[RefusedEvent]]:
    """Valid events (index, event, wire item) and the refused ones with the reason: the
    worker's checks (``parse_event`` and its time ``bounds``, judged against the clock now, the
    time the record about to be published will carry), then the caller's teams."""
    events: list[tuple[int, UsageEvent, Item]] = []
    errors: list[RefusedEvent] = []
    bounds = bounds or TimeBounds()
    now = time.time()
    for index, item in items:
        try:
            event = parse_item(item)
            bounds.check(event, None, now)
            event = scoped(event, caller)
            events.append((index, event, encode_event(event, partition_key_tag)))
        except EventError as exc:
            errors.append(RefusedEvent(index=index, reason=exc.reason))
    return events, errors


def parse_item(item: Any) -> UsageEvent:
    """One event, validated exactly as the worker validates a wire payload (JSON mode)."""
    return parse_event(item if isinstance(item, bytes) else json.dumps(item).encode())


def scoped(event: UsageEvent, caller: Principal) -> UsageEvent:
    """Enforce the caller's teams on the event's ``team`` tag (see the module docstring)."""
    if caller.teams is None:
        return event
    team = event.tags.get("team")
    if team is None and len(caller.teams) == 1:
        (only,) = caller.teams
        return event.model_copy(update={"tags": {**event.tags, "team": only}})
    if team is None or team not in caller.teams:
        allowed = ", ".join(sorted(caller.teams))
        raise EventError(
            f"tags.team: {team!r} is not a team of token {caller.name!r} (allowed: {allowed})"
        )
    return event
