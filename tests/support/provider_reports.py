"""Provider reports in their documented formats, generated from "true" usage for tests.

The provider meters every call (``true`` events, with every token type); these helpers bill
them at given per-million rates and write the responses the admin APIs return: OpenAI costs and
completions usage (unix buckets, ``amount.value`` as a JSON number), Anthropic cost report
(amounts in cents as decimal strings) and messages usage report, one bucket per page.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from spendstream.events import UsageEvent

MILLION = Decimal(1_000_000)
Rates = dict[str, Decimal]  # token type -> USD per million tokens
_DEC = re.compile(r'"__dec__(-?[0-9.E+-]+)__"')


def dumps(value: Any) -> str:
    """JSON with Decimals written as exact numbers (as a provider's server would)."""

    def default(obj: Any) -> str:
        if isinstance(obj, Decimal):
            return f"__dec__{obj}__"
        raise TypeError(type(obj).__name__)

    return _DEC.sub(r"\1", json.dumps(value, default=default))


def token_counts(event: UsageEvent) -> dict[str, int]:
    return {
        "input": event.input_tokens - event.cache_read_tokens - event.cache_write_tokens,
        "cache_read": event.cache_read_tokens,
        "cache_write": event.cache_write_tokens,
        "output": event.output_tokens,
    }


Group = tuple[date, str, str]  # (day, account, invoiced model name)


def usage_by_group(
    events: list[UsageEvent], account: Callable[[UsageEvent], str], name: Callable[[str], str]
) -> dict[Group, dict[str, int]]:
    sums: dict[Group, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for event in events:
        group = (event.event_time.date(), account(event), name(event.model))
        for kind, count in token_counts(event).items():
            sums[group][kind] += count
        sums[group]["requests"] += event.request_count
    return sums


def cost(tokens: int, rate: Decimal) -> Decimal:
    return tokens * rate / MILLION


def _pages(
    buckets: dict[date, list[dict[str, Any]]], bucket: Callable[[date], dict[str, Any]]
) -> list[dict[str, Any]]:
    days = sorted(buckets)
    pages = []
    for index, day in enumerate(days):
        more = index + 1 < len(days)
        pages.append(
            {
                "data": [{**bucket(day), "results": buckets[day]}],
                "has_more": more,
                "next_page": f"page_{index + 1}" if more else None,
            }
        )
    return pages


def _unix_bucket(day: date) -> dict[str, Any]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return {
        "object": "bucket",
        "start_time": int(start.timestamp()),
        "end_time": int((start + timedelta(days=1)).timestamp()),
    }


def _iso_bucket(day: date) -> dict[str, Any]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return {
        "starting_at": start.isoformat().replace("+00:00", "Z"),
        "ending_at": (start + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
    }


OPENAI_ITEMS = {"input": "input", "cache_read": "cached input", "output": "output"}


def openai_costs(usage: dict[Group, dict[str, int]], rates: dict[str, Rates]) -> list[Any]:
    """``/v1/organization/costs`` pages grouped by line_item and project_id."""
    buckets: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for (day, project, model), sums in sorted(usage.items()):
        for kind, item in OPENAI_ITEMS.items():
            buckets[day].append(
                {
                    "object": "organization.costs.result",
                    "amount": {"value": cost(sums[kind], rates[model][kind]), "currency": "usd"},
                    "line_item": f"{model}, {item}",
                    "project_id": project,
                }
            )
    return _pages(buckets, lambda day: {"object": "bucket", **_unix_bucket(day)})


def openai_usage(usage: dict[Group, dict[str, int]]) -> list[Any]:
    """``/v1/organization/usage/completions`` pages grouped by model and project_id."""
    buckets: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for (day, project, model), sums in sorted(usage.items()):
        buckets[day].append(
            {
                "object": "organization.usage.completions.result",
                "input_tokens": sums["input"] + sums["cache_read"] + sums["cache_write"],
                "input_cached_tokens": sums["cache_read"],
                "output_tokens": sums["output"],
                "input_audio_tokens": 0,
                "output_audio_tokens": 0,
                "num_model_requests": sums["requests"],
                "project_id": project,
                "user_id": None,
                "api_key_id": None,
                "model": model,
                "batch": False,
            }
        )
    return _pages(buckets, _unix_bucket)


ANTHROPIC_TYPES = {
    "input": "uncached_input_tokens",
    "cache_read": "cache_read_input_tokens",
    "cache_write": "cache_creation.ephemeral_5m_input_tokens",
    "output": "output_tokens",
}


def anthropic_cost(usage: dict[Group, dict[str, int]], rates: dict[str, Rates]) -> list[Any]:
    """``/v1/organizations/cost_report`` pages (group_by workspace_id, description)."""
    buckets: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for (day, workspace, model), sums in sorted(usage.items()):
        for kind, token_type in ANTHROPIC_TYPES.items():
            cents = cost(sums[kind], rates[model][kind]) * 100
            buckets[day].append(
                {
                    "currency": "USD",
                    "amount": str(cents),
                    "workspace_id": workspace or None,
                    "description": f"Claude {model} usage",
                    "cost_type": "tokens",
                    "context_window": "0-200k",
                    "model": model,
                    "service_tier": "standard",
                    "token_type": token_type,
                }
            )
    return _pages(buckets, _iso_bucket)


def anthropic_usage(usage: dict[Group, dict[str, int]]) -> list[Any]:
    """``/v1/organizations/usage_report/messages`` pages (group_by model, workspace_id)."""
    buckets: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for (day, workspace, model), sums in sorted(usage.items()):
        buckets[day].append(
            {
                "uncached_input_tokens": sums["input"],
                "cache_creation": {
                    "ephemeral_1h_input_tokens": 0,
                    "ephemeral_5m_input_tokens": sums["cache_write"],
                },
                "cache_read_input_tokens": sums["cache_read"],
                "output_tokens": sums["output"],
                "server_tool_use": {"web_search_requests": 0},
                "api_key_id": None,
                "workspace_id": workspace or None,
                "model": model,
                "service_tier": "standard",
                "context_window": "0-200k",
            }
        )
    return _pages(buckets, _iso_bucket)
