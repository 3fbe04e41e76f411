"""Generated traffic with known answers for the insights tests (tests/test_insights*.py).

Three weeks from Monday 2026-10-05: ``classify`` (10,000 short gpt-4o calls, repeated prompts,
near-duplicates 60 s apart, some truncated, some answered from the app's cache), ``draft``
(claude-sonnet-4-5, long and growing prompts, prompt caching, some above the 200k tier, some
batch), ``nightly`` (gpt-4.1, a configured batch feature), ``report`` (gpt-4o-mini tagged
interactive=false), ``search_embed`` (embeddings with repeated content) and ``legacy`` (a model
the catalog does not know: unpriced).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from spendstream.events import UsageEvent

START = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday
WEEKS = 3
END = START + timedelta(weeks=WEEKS)


def _hash(prefix: str, number: int) -> str:
    return f"{prefix}{number:030x}"


def generate(seed: int = 7) -> list[UsageEvent]:
    rng = random.Random(seed)
    events: list[UsageEvent] = []

    def at() -> datetime:
        return START + timedelta(seconds=rng.randrange(WEEKS * 7 * 86_400))

    def add(**fields: object) -> UsageEvent:
        event = UsageEvent.model_validate(fields)
        events.append(event)
        return event

    for i in range(10_000):
        event = add(
            event_time=at(),
            provider="openai",
            model="gpt-4o",
            input_tokens=rng.randrange(100, 900),
            output_tokens=rng.randrange(5, 200),
            cache_read_tokens=0,
            prompt_hash=_hash("a", rng.randrange(300)),
            response_cached=i % 50 == 0,
            finish_reason="length" if i % 17 == 0 else "stop",
            max_tokens=200,
            tags={"team": "search", "app": "web", "feature": "classify"},
        )
        if i % 100 == 1:  # the same request again a minute later, paid again
            add(
                **{
                    **event.model_dump(exclude={"event_id"}),
                    "event_time": event.event_time + timedelta(seconds=60),
                }
            )
    for i in range(600):
        moment = at()
        week = (moment - START).days // 7
        prompt = rng.randrange(1_000, 60_000) * (2 + week) // 2
        if i % 25 == 0:
            prompt = rng.randrange(200_001, 260_000)
        cache_read = rng.randrange(0, prompt // 2) if i % 3 == 0 else 0
        cache_write = rng.randrange(0, prompt // 4) if i % 5 == 1 else 0
        add(
            event_time=moment,
            provider="anthropic",
            model="claude-sonnet-4-5",
            input_tokens=prompt,
            output_tokens=rng.randrange(100, 3_000),
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            batch=i % 10 == 0,
            prompt_hash=_hash("b", rng.randrange(40)),
            finish_reason="length" if i % 9 == 0 else "end_turn",
            tags={"team": "support", "app": "bot", "feature": "draft"},
        )
    for i in range(300):
        add(
            event_time=at(),
            provider="openai",
            model="gpt-4.1",
            input_tokens=rng.randrange(2_000, 9_000),
            output_tokens=rng.randrange(100, 900),
            batch=i % 3 == 0,
            tags={"team": "growth", "app": "etl", "feature": "nightly"},
        )
    for _ in range(100):
        add(
            event_time=at(),
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=rng.randrange(500, 5_000),
            output_tokens=rng.randrange(50, 500),
            tags={"team": "growth", "app": "etl", "feature": "report", "interactive": "false"},
        )
    for _ in range(500):
        add(
            event_time=at(),
            provider="openai",
            model="text-embedding-3-small",
            operation="embeddings",
            input_tokens=rng.randrange(50, 2_000),
            prompt_hash=_hash("c", rng.randrange(200)),
            tags={"team": "search", "app": "web", "feature": "search_embed"},
        )
    for _ in range(50):
        add(
            event_time=at(),
            provider="mistral",
            model="no-such-model",
            input_tokens=rng.randrange(10, 500),
            output_tokens=rng.randrange(10, 500),
            finish_reason="length",
            tags={"team": "search", "app": "web", "feature": "legacy"},
        )
    return events
