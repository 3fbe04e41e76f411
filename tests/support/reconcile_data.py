"""Reconciliation test data: what the providers metered (every call, every token type), what
our ledger logged with planted causes, and the providers' reports of the true traffic.

Planted causes: gpt-4o's input price drifted (2.50 -> 2.75 per million at the provider), 2 % of
gpt-4o-mini calls never sent, o4-mini events without their reasoning tokens, Anthropic events
without their cache writes, and gpt-9-preview unknown to our catalog (unpriced).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from spendstream.events import UsageEvent
from tests.support import provider_reports as reports

START = datetime(2026, 11, 2, tzinfo=UTC)
DAYS = 3
M = Decimal(1_000_000)
PROJECTS = {"proj_search": {"team": "search"}, "proj_support": {"team": "support"}}
SNAPSHOT = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "o4-mini": "o4-mini-2025-04-16",
    "gpt-9-preview": "gpt-9-preview-2026-01-01",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
}
# What the providers really charge (USD per million tokens). gpt-4o input drifted 2.50 -> 2.75.
RATES = {
    "gpt-4o-2024-08-06": {
        "input": Decimal("2.75"),
        "cache_read": Decimal("1.25"),
        "output": Decimal("10.00"),
    },
    "gpt-4o-mini-2024-07-18": {
        "input": Decimal("0.15"),
        "cache_read": Decimal("0.075"),
        "output": Decimal("0.60"),
    },
    "o4-mini-2025-04-16": {
        "input": Decimal("1.10"),
        "cache_read": Decimal("0.275"),
        "output": Decimal("4.40"),
    },
    "gpt-9-preview-2026-01-01": {
        "input": Decimal("20"),
        "cache_read": Decimal("5"),
        "output": Decimal("80"),
    },
    "claude-sonnet-4-5-20250929": {
        "input": Decimal("3.00"),
        "cache_read": Decimal("0.30"),
        "cache_write": Decimal("3.75"),
        "output": Decimal("15.00"),
    },
}


def project(event: UsageEvent) -> str:
    return "proj_search" if event.tags.get("team") == "search" else "proj_support"


def true_traffic(seed: int = 7) -> list[UsageEvent]:
    """What the providers metered: every call, with every token type."""
    rng = random.Random(seed)
    events = []
    for i in range(1500):
        model = ("gpt-4o", "gpt-4o-mini", "o4-mini", "gpt-9-preview", "claude-sonnet-4-5")[i % 5]
        provider = "anthropic" if model.startswith("claude") else "openai"
        inputs = rng.randrange(100, 20_000)
        cache_read = rng.randrange(0, inputs // 2) if i % 3 else 0
        cache_write = rng.randrange(0, inputs // 4) if provider == "anthropic" else 0
        output = rng.randrange(1, 3_000)
        reasoning = rng.randrange(0, 5_000) if model == "o4-mini" else 0
        tags = {"team": ("search", "support")[i % 2 if i % 7 else 0], "app": "web"}
        if provider == "anthropic" and i % 3 == 0:
            del tags["team"]  # untagged spend: the workspace's coverage falls below 100 %
        events.append(
            UsageEvent(
                event_time=START + timedelta(seconds=rng.randrange(DAYS * 86_400)),
                provider=provider,
                model=model,
                input_tokens=inputs,
                output_tokens=output + reasoning,
                reasoning_tokens=reasoning,
                cache_read_tokens=cache_read,
                cache_write_tokens=cache_write,
                request_count=1 + i % 2,
                tags=tags,
            )
        )
    return events


def what_we_logged(true: list[UsageEvent]) -> tuple[list[UsageEvent], list[UsageEvent]]:
    """Plant the causes: 2 % of gpt-4o-mini calls never sent, o4-mini events without their
    reasoning tokens, Anthropic events without their cache writes. Returns (logged, dropped)."""
    logged, dropped = [], []
    mini = 0
    for event in true:
        if event.model == "gpt-4o-mini":
            mini += 1
            if mini % 50 == 0:
                dropped.append(event)
                continue
        if event.model == "o4-mini":
            event = event.model_copy(
                update={
                    "output_tokens": event.output_tokens - event.reasoning_tokens,
                    "reasoning_tokens": 0,
                }
            )
        if event.provider == "anthropic":
            event = event.model_copy(
                update={
                    "input_tokens": event.input_tokens - event.cache_write_tokens,
                    "cache_write_tokens": 0,
                }
            )
        logged.append(event)
    return logged, dropped


def saved_reports(true: list[UsageEvent]) -> dict[str, list[Any]]:
    openai = [e for e in true if e.provider == "openai"]
    anthropic = [e for e in true if e.provider == "anthropic"]
    o_usage = reports.usage_by_group(openai, project, SNAPSHOT.__getitem__)
    a_usage = reports.usage_by_group(anthropic, lambda e: "wrkspc_1", SNAPSHOT.__getitem__)
    return {
        "openai-costs": reports.openai_costs(o_usage, RATES),
        "openai-usage": reports.openai_usage(o_usage),
        "anthropic-cost": reports.anthropic_cost(a_usage, RATES),
        "anthropic-usage": reports.anthropic_usage(a_usage),
    }


def saved_page_files(
    directory: Path, names: tuple[str, ...] = ("openai-costs", "openai-usage")
) -> list[str]:
    """The saved report pages of :func:`true_traffic` written as JSON files (for ``import``)."""
    saved = saved_reports(true_traffic())
    files = []
    for name in names:
        for index, page in enumerate(saved[name]):
            path = directory / f"{name}-{index}.json"
            path.write_text(reports.dumps(page))
            files.append(str(path))
    return files
