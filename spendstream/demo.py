"""Demo traffic: realistic LLM usage from several teams, apps, models and features, with bursts.

It exercises every part a newcomer came to see, so each dashboard page and each insight has
figures within a minute of ``make run``: two weeks of history (so "what changed" has a
baseline and prompt growth a trend), budgets crossed, a runaway user that the demo quota
blocks through ``admit()``, outcomes, batch traffic, truncated answers, repeated prompts and
re-embedded documents, tool units (web search calls), spend lacking required tags, and the runs
of an agent for five customers (model calls and priced tool calls, in conversations).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from spendstream.events import Operation, UsageEvent
from spendstream.producers import Recorder

RUNAWAY_USER = "user-runaway"
HISTORY_DAYS = 14
# Prompts of this feature grow over the history (the prompt_growth insight, Explain's driver).
GROWING_FEATURE = "reply-draft"
GROWTH_OVER_HISTORY = 1.5


@dataclass(frozen=True)
class Workload:
    """One feature of one app: what it calls, how heavily and how."""

    team: str
    app: str  # "" leaves the tag out: spend lacking a required tag
    feature: str
    provider: str
    model: str
    weight: float
    mean_input: int
    mean_output: int
    cache_share: float = 0.0
    operation: Operation = "chat"
    batch: bool = False
    max_tokens: int | None = None  # answers reaching it are cut (finish_reason "length")
    repeat_pool: int = 0  # prompts drawn from this many distinct ones (0: all distinct)
    web_search_share: float = 0.0  # share of calls that also make one web search call
    outcome: str | None = None  # a business outcome reached by about a third of the calls
    interactive: bool = True  # False: tagged interactive=false (no one waits for the answer)


WORKLOADS: tuple[Workload, ...] = (
    Workload("search", "answers", "qa", "openai", "gpt-4o", 3.0, 2_400, 350, 0.4,
             web_search_share=0.2),
    Workload("search", "answers", "rerank", "openai", "gpt-4o-mini", 6.0, 900, 40),
    Workload("search", "indexer", "embed-docs", "openai", "text-embedding-3-small", 3.0, 1_500,
             0, operation="embeddings", repeat_pool=60),
    Workload("support", "helpdesk", GROWING_FEATURE, "anthropic", "claude-sonnet-4-5", 2.0,
             3_500, 600, 0.6, outcome="ticket_resolved"),
    Workload("support", "helpdesk", "triage", "anthropic", "claude-haiku-4-5", 5.0, 700, 60, 0.3),
    Workload("growth", "emails", "copywriter", "google", "gemini-2.5-flash", 3.0, 1_200, 900,
             max_tokens=1_000, outcome="email_sent"),
    Workload("growth", "emails", "nightly-digest", "openai", "gpt-4o-mini", 1.5, 3_000, 400,
             batch=True, interactive=False),
    Workload("research", "notebook", "analysis", "anthropic", "claude-sonnet-4-5", 1.0, 12_000,
             2_000, 0.5),
    Workload("research", "notebook", "report-summary", "openai", "gpt-4o", 0.8, 6_000, 700,
             interactive=False),
    Workload("platform", "gateway", "summarise", "openai", "gpt-4o-mini", 4.0, 2_000, 200, 0.2,
             repeat_pool=40),
    Workload("platform", "", "legacy-cron", "openai", "gpt-4o-mini", 0.5, 1_000, 150),
)  # fmt: skip
USERS = tuple(f"user-{n:03d}" for n in range(1, 41))
# The agent's runs (docs/agents.md): support's ticket agent resolving tickets for customers.
AGENT = "ticket-agent"
AGENT_WORKLOAD = Workload(
    "support", "helpdesk", "auto-resolve", "anthropic", "claude-haiku-4-5", 0.0, 2_500, 300, 0.3
)
CUSTOMERS = ("acme", "globex", "initech", "umbrella", "hooli")
AGENT_RUNS_PER_HOUR = 0.5  # in the history (x3 in working hours); live, see DemoTraffic
TOOL_EVERY = 3  # every third step of a run is a web search (a priced tool call)
ENVIRONMENTS = ("prod", "prod", "prod", "staging")

# What the worker is given for the demo (``spendstream dev --demo`` without quotas of its own):
# the runaway user's quota.
DEMO_QUOTAS: list[dict[str, Any]] = [
    {"name": "support-user-daily", "scope": {"team": "support"}, "group_by": ["user"],
     "limit": "5", "per": "day", "owner": "support-oncall"},
]  # fmt: skip


def make_event(
    workload: Workload,
    rng: random.Random,
    at: datetime | None = None,
    user: str | None = None,
    growth: float = 1.0,
    extra: Mapping[str, Any] | None = None,
) -> UsageEvent:
    """One plausible call of ``workload`` (log-normal token counts) at ``at`` (now if None);
    ``extra``: more fields (an agent run's ids)."""
    input_tokens = max(1, int(rng.lognormvariate(0, 0.6) * workload.mean_input * growth))
    output_tokens = (
        max(1, int(rng.lognormvariate(0, 0.7) * workload.mean_output))
        if workload.mean_output
        else 0
    )
    fields: dict[str, Any] = {}
    if workload.max_tokens is not None:
        fields["max_tokens"] = workload.max_tokens
        fields["finish_reason"] = "length" if output_tokens >= workload.max_tokens else "stop"
        output_tokens = min(output_tokens, workload.max_tokens)
    if workload.repeat_pool:
        fields["prompt_hash"] = f"{workload.feature}-{rng.randrange(workload.repeat_pool):04d}"
    if workload.web_search_share and rng.random() < workload.web_search_share:
        fields["units"] = {"web_search_calls": 1}
    if at is not None:
        fields["event_time"] = at
    fields.update(extra or {})
    tags = {
        "team": workload.team,
        "app": workload.app,
        "feature": workload.feature,
        "env": rng.choice(ENVIRONMENTS),
        "user": user or rng.choice(USERS),
        "interactive": "" if workload.interactive else "false",
    }
    return UsageEvent(
        provider=workload.provider,
        model=workload.model,
        operation=workload.operation,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=int(input_tokens * workload.cache_share * rng.random()),
        batch=workload.batch,
        latency_ms=round(rng.lognormvariate(6.5, 0.5), 1),
        tags={key: value for key, value in tags.items() if value},
        **fields,
    )


def history(
    now: datetime, rng: random.Random, per_hour: float = 12.0, days: int = HISTORY_DAYS
) -> list[UsageEvent]:
    """``days`` (back to that week's Monday) of past traffic up to ``now``: busier in working
    hours (UTC 08-18) and on weekdays, with :data:`GROWING_FEATURE`'s prompts growing steadily
    towards today's size."""
    # From a Monday, so every week the weekly insights compare is a whole one.
    first = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    start = first - timedelta(days=first.weekday())
    weights = [w.weight for w in WORKLOADS]
    events: list[UsageEvent] = []
    hour = start
    while hour < now:
        busy = (3.0 if 8 <= hour.hour < 18 else 1.0) * (0.4 if hour.weekday() >= 5 else 1.0)
        age = (now - hour) / (now - start)  # 1 at the start, 0 now
        for workload in rng.choices(WORKLOADS, weights=weights, k=int(per_hour * busy)):
            at = hour + timedelta(seconds=rng.randrange(3600))
            if at >= now:
                continue
            growth = (
                1 + GROWTH_OVER_HISTORY * (1 - age) if workload.feature == GROWING_FEATURE else 1
            )
            events.append(make_event(workload, rng, at=at, growth=growth))
        for _ in range(int(AGENT_RUNS_PER_HOUR * busy + rng.random())):
            end = hour + timedelta(seconds=rng.randrange(20, 3600))
            if end < now:
                events.extend(agent_run(rng, end))
        hour += timedelta(hours=1)
    return events


def agent_run(rng: random.Random, end: datetime) -> list[UsageEvent]:
    """One run of :data:`AGENT` for one customer, ending at ``end``: 3-8 steps two seconds
    apart, every :data:`TOOL_EVERY`-th a web search; the customer's conversations (sessions)
    span several runs."""
    customer = rng.choice(CUSTOMERS)
    run: dict[str, Any] = {
        "run_id": f"run-{rng.getrandbits(64):016x}",
        "agent": AGENT,
        "customer": customer,
        "session_id": f"{customer}-{rng.randrange(8)}",
        "trace_id": f"{rng.getrandbits(128):032x}",
    }
    steps = rng.randrange(3, 9)
    events = []
    for step in range(1, steps + 1):
        at = end - timedelta(seconds=2 * (steps - step))
        ids = {**run, "step": step}
        if step % TOOL_EVERY:
            events.append(make_event(AGENT_WORKLOAD, rng, at=at, extra=ids))
            continue
        events.append(
            UsageEvent(
                provider="openai",
                model="gpt-4o",
                operation="other",
                tool="web_search",
                units={"web_search_calls": Decimal(1)},
                latency_ms=round(rng.lognormvariate(5.5, 0.4), 1),
                event_time=at,
                tags={
                    "team": AGENT_WORKLOAD.team,
                    "app": AGENT_WORKLOAD.app,
                    "feature": AGENT_WORKLOAD.feature,
                },
                **ids,
            )
        )
    return events


class DemoTraffic:
    """Publishes demo events at ``rate`` per second until stopped, after the history; every
    ``burst_every_s`` one team bursts to ``burst_factor`` times its normal traffic for
    ``burst_s`` seconds, and :data:`RUNAWAY_USER` asks ``admit()`` before each of its large
    calls until the demo quota refuses it."""

    def __init__(
        self,
        recorder: Recorder,
        rate: float = 50.0,
        burst_every_s: float = 30.0,
        burst_s: float = 8.0,
        burst_factor: float = 8.0,
        runaway_rate: float = 4.0,
        agent_rate: float = 0.3,
        with_history: bool = True,
        seed: int | None = None,
    ) -> None:
        self.recorder = recorder
        self.rate = rate
        self.burst_every_s = burst_every_s
        self.burst_s = burst_s
        self.burst_factor = burst_factor
        self.runaway_rate = runaway_rate
        self.agent_rate = agent_rate  # agent runs a second
        self.with_history = with_history
        self.rng = random.Random(seed)
        self.sent = 0
        self.outcomes = 0
        self.denied = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)

    def start(self) -> DemoTraffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _weights(self, bursting_team: str | None) -> list[float]:
        return [
            w.weight * (self.burst_factor if w.team == bursting_team else 1.0) for w in WORKLOADS
        ]

    def _publish(self, workload: Workload, event: UsageEvent) -> None:
        self.recorder.record(event)
        self.sent += 1
        if workload.outcome and self.rng.random() < 1 / 3:
            self.recorder.outcome(workload.outcome, 1, **_outcome_tags(event.tags))
            self.outcomes += 1

    def _runaway_call(self) -> None:
        """One large call of the runaway user, if admission allows it."""
        workload = WORKLOADS[3]  # support's reply drafts on the priciest model
        decision = self.recorder.admit(
            model=workload.model, estimated_tokens=20_000, team=workload.team,
            app=workload.app, feature=workload.feature, user=RUNAWAY_USER,
        )  # fmt: skip
        if not decision.allowed:
            self.denied += 1
            return
        self._publish(workload, make_event(workload, self.rng, user=RUNAWAY_USER, growth=6.0))

    def _run(self) -> None:
        if self.with_history:
            for event in history(datetime.now(UTC), self.rng):
                if self._stop.is_set():
                    return
                self.recorder.record(event)
                self.sent += 1
        started = time.monotonic()
        teams = sorted({w.team for w in WORKLOADS})
        tick = 0.1
        while not self._stop.wait(tick):
            elapsed = time.monotonic() - started
            cycle, offset = divmod(elapsed, self.burst_every_s)
            burst_team = teams[int(cycle) % len(teams)] if offset < self.burst_s and cycle else None
            weights = self._weights(burst_team)
            boost = sum(weights) / sum(w.weight for w in WORKLOADS)
            count = int(self.rate * tick * boost + self.rng.random())
            for workload in self.rng.choices(WORKLOADS, weights=weights, k=count):
                self._publish(workload, make_event(workload, self.rng))
            if self.rng.random() < self.runaway_rate * tick:
                self._runaway_call()
            if self.rng.random() < self.agent_rate * tick:
                for event in agent_run(self.rng, datetime.now(UTC)):
                    self.recorder.record(event)
                    self.sent += 1


def _outcome_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {key: tags[key] for key in ("team", "app", "feature") if key in tags}
