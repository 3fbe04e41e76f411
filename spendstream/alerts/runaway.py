"""The ``runaway_run`` alert (docs/agents.md "Runaway runs").

A run is runaway when its cost is above N x its agent's p95 cost per run (the runs started in
the last ``baseline_days``, once the agent has ``min_runs`` of them) or when it has more than K
steps. A job of the alert service, so only the holder of the evaluator lease runs it; each pass
checks the runs with a step in the last ``active_minutes`` from ``agent_runs`` (one row per run,
exact Decimal money) and enqueues one :class:`~spendstream.notifications.kinds.RunawayRun` per
run through the outbox. The id is a function of the run alone, so a run is alerted once, ever
(a later pass, a restart or another lease holder finds it stored).

The message carries the run's breakdown from the ledger (model or tool, steps, tokens, cost) and
its costliest steps; names from events are made inert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from spendstream.config.agents import RunawaySettings
from spendstream.logs import get_logger
from spendstream.money import format_usd
from spendstream.notifications.kinds import RunawayRun
from spendstream.notifications.outbox import Outbox
from spendstream.notifications.records import Notification, alert_id
from spendstream.notifications.text import inert
from spendstream.periods import format_time
from spendstream.sinks.access import ClientReader, Reader
from spendstream.sinks.run_rollup import RUNS_TABLE

log = get_logger(__name__)
KIND = "runaway_run"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # the id's period: a run is alerted once, ever
MONEY_SQL = "Decimal(38, 18)"
STEP_NAME_SQL = "if(tool != '', 'tool', 'model') AS kind, if(tool != '', tool, model) AS name"
MAX_BREAKDOWN_LINES = 20
PLACES = Decimal("1e-18")  # the ledger's money scale


@dataclass(frozen=True)
class Runaway:
    """A run over its limits, with what it broke."""

    agent: str
    run_id: str
    team: str
    customer: str
    first_minute: datetime
    last_minute: datetime
    steps: int
    cost: Decimal
    tool_cost: Decimal
    p95: Decimal | None  # the agent's p95 cost per run (None: too few runs for a baseline)
    cost_limit: Decimal | None  # N x p95, when the cost broke it
    steps_over: bool

    @property
    def subject(self) -> str:
        return f"run/{self.agent}/{self.run_id}"

    @property
    def notification_id(self) -> str:
        return alert_id(self.subject, KIND, EPOCH, extra=self.team)


def agent_p95(
    reader: Reader, settings: RunawaySettings, now: datetime
) -> dict[str, tuple[Decimal, int]]:
    """Each agent's p95 cost per run and run count over the baseline window (agents with at
    least ``min_runs`` runs only)."""
    rows = reader.query(
        f"SELECT agent, quantileExact(0.95)(cost), count() FROM {RUNS_TABLE} FINAL "
        "WHERE first_minute >= {lo:DateTime} AND first_minute < {hi:DateTime} "
        "AND (empty({agents:Array(String)}) OR has({agents:Array(String)}, agent)) "
        "GROUP BY agent HAVING count() >= {min_runs:UInt32}",
        {
            "lo": now - settings.baseline,
            "hi": now,
            "agents": settings.agents,
            "min_runs": settings.min_runs,
        },
    ).rows
    return {str(agent): (Decimal(p95), int(runs)) for agent, p95, runs in rows}


def find_runaways(reader: Reader, settings: RunawaySettings, now: datetime) -> list[Runaway]:
    """The recently active runs above N x their agent's p95 cost or over K steps."""
    p95 = agent_p95(reader, settings, now)
    limits = {agent: value * settings.cost_multiple for agent, (value, _runs) in p95.items()}
    names = sorted(limits)
    rows = reader.query(
        "SELECT agent, run_id, team, customer, first_minute, last_minute, steps, cost, tool_cost "
        f"FROM {RUNS_TABLE} FINAL WHERE last_minute >= {{active:DateTime}} "
        "AND (empty({agents:Array(String)}) OR has({agents:Array(String)}, agent)) "
        "AND (steps > {max_steps:UInt64} OR (has({names:Array(String)}, agent) AND cost > "
        "toDecimal128({limits:Array(String)}[indexOf({names:Array(String)}, agent)], 18))) "
        "ORDER BY cost DESC, run_id LIMIT 1000",
        {
            "active": now - settings.active,
            "agents": settings.agents,
            "max_steps": settings.max_steps,
            "names": names,
            # Decimal text (exact to 18 places; the exact comparison is redone below).
            "limits": [f"{limits[name].quantize(PLACES, ROUND_FLOOR):f}" for name in names],
        },
    ).rows
    found = []
    for agent, run_id, team, customer, first, last, steps, cost, tool_cost in rows:
        limit = limits.get(agent)
        cost = Decimal(cost)
        if int(steps) <= settings.max_steps and (limit is None or cost <= limit):
            continue
        found.append(
            Runaway(
                agent,
                run_id,
                team,
                customer,
                first,
                last,
                int(steps),
                cost,
                Decimal(tool_cost),
                p95[agent][0] if agent in p95 else None,
                limit if limit is not None and cost > limit else None,
                int(steps) > settings.max_steps,
            )
        )
    return found


def breakdown(reader: Reader, run: Runaway, top: int) -> tuple[list[str], list[str]]:
    """The run's cost per model or tool (steps, tokens, cost) and its ``top`` costliest steps,
    as message lines (read from the ledger within the run's minutes)."""
    params = {
        "lo": run.first_minute,
        "hi": run.last_minute + timedelta(minutes=1),
        "run": run.run_id,
        "agent": run.agent,
        "team": run.team,
        "top": top,
    }
    where = (
        "FROM ledger FINAL WHERE event_time >= {lo:DateTime} AND event_time < {hi:DateTime} "
        "AND run_id = {run:String} AND agent = {agent:String} AND team = {team:String}"
    )
    per_name = reader.query(
        f"SELECT {STEP_NAME_SQL}, count(), sum(input_tokens), sum(output_tokens), "
        f"sum(cost_total) AS cost {where} GROUP BY kind, name ORDER BY cost DESC, kind, name "
        f"LIMIT {MAX_BREAKDOWN_LINES}",
        params,
    ).rows
    steps = reader.query(
        f"SELECT step, event_time, {STEP_NAME_SQL}, input_tokens, output_tokens, cost_total "
        f"{where} ORDER BY cost_total DESC, step, event_id LIMIT {{top:UInt32}}",
        params,
    ).rows
    by_name = [
        f"- {kind} {inert(name or '?')}: {calls} steps, {inp:,} in / {out:,} out tokens, "
        f"{format_usd(Decimal(cost))}"
        for kind, name, calls, inp, out, cost in per_name
    ]
    costliest = [
        f"- step {step} at {format_time(at)}: {kind} {inert(name or '?')}, "
        f"{inp:,} in / {out:,} out tokens, {format_usd(Decimal(cost))}"
        for step, at, kind, name, inp, out, cost in steps
    ]
    return by_name, costliest


def render(run: Runaway, settings: RunawaySettings, lines: tuple[list[str], list[str]]) -> str:
    why = []
    if run.cost_limit is not None and run.p95 is not None:
        why.append(
            f"cost {format_usd(run.cost)} is above {settings.cost_multiple.normalize():f} x the "
            f"agent's p95 cost per run ({format_usd(run.p95)}): {format_usd(run.cost_limit)}"
        )
    if run.steps_over:
        why.append(f"{run.steps:,} steps, more than {settings.max_steps:,}")
    by_name, costliest = lines
    body = [
        f"**Runaway run of agent {inert(run.agent)}: {inert(run.run_id)}**",
        "Why: " + "; ".join(why),
        f"Team: {inert(run.team or '-')}; customer: {inert(run.customer or '-')}",
        f"Run: {run.steps:,} steps, {format_usd(run.cost)} (tools {format_usd(run.tool_cost)}), "
        f"{format_time(run.first_minute)} to {format_time(run.last_minute)}",
        "By model or tool:",
        *by_name,
        f"Costliest steps (top {len(costliest)}):",
        *costliest,
        f"Details: spendstream runs show {inert(run.run_id)}",
    ]
    return "\n".join(body)


class RunawayRuns:
    """The alert service's job: enqueue a ``runaway_run`` notification for every new runaway."""

    def __init__(self, settings: RunawaySettings, alerts: Outbox) -> None:
        self.settings = settings
        self.alerts = alerts
        self.reader: Reader = ClientReader(alerts.client)

    def run(self, now: datetime) -> bool:
        """One pass; True when notifications were created."""
        if not self.settings.enabled:
            return False
        found = {r.notification_id: r for r in find_runaways(self.reader, self.settings, now)}
        fresh = set(found) - self.alerts.existing_ids(sorted(found))
        created: list[Notification] = []
        for identifier in sorted(fresh, key=lambda i: (-found[i].cost, found[i].run_id)):
            run = found[identifier]
            stored = self.alerts.enqueue(self.record(run), now)
            if stored is not None:
                created.append(stored)
                log.info("runaway run", agent=run.agent, run_id=run.run_id, cost=str(run.cost))
        return bool(created)

    def record(self, run: Runaway) -> RunawayRun:
        lines = breakdown(self.reader, run, self.settings.top_steps)
        return RunawayRun(
            notification_id=run.notification_id,
            subject=run.subject,
            channels=tuple(self.settings.channels),
            period_start=run.first_minute,
            period_end=run.last_minute + timedelta(minutes=1),
            title=f"[spendstream] runaway run of agent {inert(run.agent)}: {inert(run.run_id)}",
            body=render(run, self.settings, lines),
            agent=run.agent,
            run_id=run.run_id,
            team=run.team,
            cost=run.cost,
            steps=run.steps,
            cost_limit=run.cost_limit,
        )


__all__ = ["Runaway", "RunawayRuns", "agent_p95", "find_runaways"]
