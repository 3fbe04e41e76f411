"""Demo traffic: realistic LLM usage from several teams, apps, models and features, with bursts."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from spendstream.events import UsageEvent


@dataclass(frozen=True)
class Workload:
    """One app of one team: what it calls and how heavily."""

    team: str
    app: str
    feature: str
    provider: str
    model: str
    weight: float
    mean_input: int
    mean_output: int
    cache_share: float = 0.0


WORKLOADS: tuple[Workload, ...] = (
    Workload("search", "answers", "qa", "openai", "gpt-4o", 3.0, 2_400, 350, 0.4),
    Workload("search", "answers", "rerank", "openai", "gpt-4o-mini", 6.0, 900, 40),
    Workload(
        "support", "helpdesk", "reply-draft", "anthropic", "claude-sonnet-4-5", 2.0, 3_500, 600, 0.6
    ),
    Workload("support", "helpdesk", "triage", "anthropic", "claude-haiku-4-5", 5.0, 700, 60, 0.3),
    Workload("growth", "emails", "copywriter", "google", "gemini-2.5-flash", 3.0, 1_200, 900),
    Workload(
        "research",
        "notebook",
        "analysis",
        "anthropic",
        "claude-sonnet-4-5",
        1.0,
        12_000,
        2_000,
        0.5,
    ),
    Workload("platform", "gateway", "summarise", "openai", "gpt-4o-mini", 4.0, 2_000, 200, 0.2),
)
USERS = tuple(f"user-{n:03d}" for n in range(1, 41))
ENVIRONMENTS = ("prod", "prod", "prod", "staging")


def make_event(workload: Workload, rng: random.Random) -> UsageEvent:
    """One plausible call of ``workload`` (log-normal token counts)."""
    input_tokens = max(1, int(rng.lognormvariate(0, 0.6) * workload.mean_input))
    output_tokens = max(1, int(rng.lognormvariate(0, 0.7) * workload.mean_output))
    cached = int(input_tokens * workload.cache_share * rng.random())
    return UsageEvent(
        provider=workload.provider,
        model=workload.model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cached,
        latency_ms=round(rng.lognormvariate(6.5, 0.5), 1),
        tags={
            "team": workload.team,
            "app": workload.app,
            "feature": workload.feature,
            "env": rng.choice(ENVIRONMENTS),
            "user": rng.choice(USERS),
        },
    )


class DemoTraffic:
    """Publishes demo events at ``rate`` per second until stopped; every ``burst_every_s`` one
    team bursts to ``burst_factor`` times its normal traffic for ``burst_s`` seconds."""

    def __init__(
        self,
        publish: Callable[[UsageEvent], object],
        rate: float = 50.0,
        burst_every_s: float = 30.0,
        burst_s: float = 8.0,
        burst_factor: float = 8.0,
        seed: int | None = None,
    ) -> None:
        self.publish = publish
        self.rate = rate
        self.burst_every_s = burst_every_s
        self.burst_s = burst_s
        self.burst_factor = burst_factor
        self.rng = random.Random(seed)
        self.sent = 0
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

    def _run(self) -> None:
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
                self.publish(make_event(workload, self.rng))
                self.sent += 1
