"""Agent-run test data: runs of a few agents for a few customers, each a sequence of model calls
and priced tool calls (web search), with sessions spanning several runs."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from spendstream.events import UsageEvent

START = datetime(2026, 10, 1, tzinfo=UTC)
AGENTS = ("triage", "research", "coder")
CUSTOMERS = ("acme", "globex", "initech", "umbrella")
FEATURES = ("chat", "search")
MODELS = (("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5"))


def agent_runs(runs: int, seed: int = 5, start: datetime = START) -> Iterator[UsageEvent]:
    """``runs`` runs over four days; run ``r`` has 2-12 steps, every fourth step a tool call.
    One in ten events is outside any run (plain calls): they belong to no run nor customer."""
    rng = random.Random(seed)
    for number in range(runs):
        agent = AGENTS[number % len(AGENTS)]
        customer = CUSTOMERS[rng.randrange(len(CUSTOMERS))]
        session = f"s{number // 3}"
        begin = start + timedelta(seconds=rng.randrange(0, 4 * 86_400))
        provider, model = MODELS[number % len(MODELS)]
        for step in range(1, 2 + rng.randrange(1, 12)):
            moment = begin + timedelta(seconds=step * 2)
            common = {
                "event_id": f"r{seed}-{number}-{step}",
                "event_time": moment,
                "run_id": f"run-{seed}-{number}",
                "agent": agent,
                "customer": customer,
                "session_id": session,
                "trace_id": f"{number:032x}",
                "step": step,
                "tags": {"team": "agents", "feature": FEATURES[number % 2]},
            }
            if step % 4 == 0:
                yield UsageEvent(
                    provider="openai",
                    model="gpt-4o",
                    operation="other",
                    tool="web_search",
                    units={"web_search_calls": 1},
                    latency_ms=300.0,
                    **common,
                )
                continue
            tokens = rng.randrange(200, 20_000)
            yield UsageEvent(
                provider=provider,
                model=model,
                input_tokens=tokens,
                output_tokens=tokens // 8,
                latency_ms=float(rng.randrange(200, 4_000)),
                **common,
            )
        if number % 10 == 0:
            yield UsageEvent(
                event_id=f"plain-{seed}-{number}",
                event_time=begin,
                provider="openai",
                model="gpt-4o-mini",
                input_tokens=1_000,
                output_tokens=100,
                tags={"team": "web"},
            )
