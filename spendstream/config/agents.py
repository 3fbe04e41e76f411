"""``[agents.runaway]``: the ``runaway_run`` alert (docs/agents.md "Runaway runs")."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Annotated

from pydantic import Field

from spendstream.config.base import Section


class RunawaySettings(Section):
    """A run is runaway when its cost is above ``cost_multiple`` x its agent's p95 cost per run
    (over the runs started in the last ``baseline_days``, with at least ``min_runs`` of them) or
    when it has more than ``max_steps`` steps. Evaluated by the holder of the evaluator lease;
    one alert per run, ever."""

    enabled: bool = Field(default=False, description="evaluate runaway runs (needs channels)")
    cost_multiple: Annotated[
        Decimal, Field(gt=0, le=1_000_000, decimal_places=6, description="N in N x p95")
    ] = Decimal(5)
    max_steps: Annotated[int, Field(ge=1, description="K: more steps than this is runaway")] = 200
    min_runs: Annotated[
        int, Field(ge=1, description="runs an agent needs before its p95 is a baseline")
    ] = 20
    baseline_days: Annotated[int, Field(ge=1, le=90, description="the p95's window")] = 7
    active_minutes: Annotated[
        int, Field(ge=1, le=10_080, description="runs with a step this recent are checked")
    ] = 60
    agents: list[str] = Field(default_factory=list, description="only these agents; none: all")
    channels: list[str] = Field(
        default_factory=list, description="channel names from [alerts.channels]"
    )
    top_steps: Annotated[int, Field(ge=1, le=50, description="steps listed in a message")] = 10

    @property
    def baseline(self) -> timedelta:
        return timedelta(days=self.baseline_days)

    @property
    def active(self) -> timedelta:
        return timedelta(minutes=self.active_minutes)


class AgentSettings(Section):
    """``[agents]``: guardrails on agent runs."""

    runaway: RunawaySettings = RunawaySettings()
