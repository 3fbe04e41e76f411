"""Runs, sessions and customers read from their rollups (docs/agents.md).

Every read takes the caller's team condition (``spendstream.auth.scope.team_condition``: ``1``
or ``team IN {scope_teams:Array(String)}``) and ANDs it in, so a team-scoped token sees its
teams' spend only. Runs come from ``agent_runs`` (one row per run), sessions from
``agent_minute`` (one row per run and minute), customers from
``customer_day``; a run's steps from the ledger, bounded by the run's own minutes. Each event is
in exactly one rollup row, so the sum over runs (plus the spend outside runs), the sum over
customers and the ledger's total are equal, exactly.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from spendstream.sinks.access import QueryResult, Reader, instant
from spendstream.sinks.migrations import AGENT_TABLES, CUSTOMER_TABLES
from spendstream.sinks.run_rollup import RUNS_TABLE
from spendstream.sinks.windows import has_whole_days, spend_source, window_parameters

Scope = tuple[str, dict[str, Any]]
MINUTES, DAYS = AGENT_TABLES["minute"], CUSTOMER_TABLES["day"]
# Grouping by a run over millions of runs spills to disk past sinks.access.SPILL_GROUP_BY_BYTES:
# a setting of the readers' sessions (DirectReader, the API's), not a SETTINGS clause here, so
# the CLI can run these reads through a worker's free-SQL guard, which refuses SETTINGS.


def _window(since: datetime, until: datetime, scope: Scope) -> tuple[str, dict[str, Any]]:
    condition, params = scope
    where = f"window_start >= {{lo:DateTime}} AND window_start < {{hi:DateTime}} AND {condition}"
    return where, {**params, "lo": since, "hi": until}


def _per_run(since: datetime, until: datetime, scope: Scope) -> tuple[str, dict[str, Any]]:
    """One row per run started in ``[since, until)`` (``agent_runs``, migration 1102): its
    agent, customer, session, start, steps, cost and tool cost. ``agent_runs`` keeps a row per
    run *and team*: the reader's rows of a run are summed, so an all-teams reader sees each run
    once with its whole cost and a team-scoped reader its teams' part (docs/agents.md). Rows
    are those starting in the window: a run whose teams' parts start on both sides of the
    window's start counts its later part only (an exact start costs a second scan and a set of
    every run: 7x slower at 1.15 M runs, see docs/agents.md)."""
    condition, params = scope
    window = "first_minute >= {lo:DateTime} AND first_minute < {hi:DateTime}"
    return (
        "SELECT run_id, agent, any(customer) AS customer, any(session_id) AS session_id, "
        "min(first_minute) AS started, max(last_minute) AS last_minute, sum(steps) AS steps, "
        "sum(tool_steps) AS tool_steps, sum(cost) AS run_cost, sum(tool_cost) AS run_tool_cost, "
        "sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens "
        f"FROM {RUNS_TABLE} FINAL WHERE {window} AND {condition} GROUP BY agent, run_id"
    ), {**params, "lo": since, "hi": until}


def runs_by_agent(reader: Reader, since: datetime, until: datetime, scope: Scope) -> QueryResult:
    """Per agent: runs, cost per run (p50, p95, max, total), steps per run (p50, p95, max),
    and the tool calls' share of the cost, over the runs started in ``[since, until)``."""
    runs, params = _per_run(since, until, scope)
    return reader.query(
        "SELECT agent, count() AS runs, quantileExact(0.5)(run_cost) AS cost_p50, "
        "quantileExact(0.95)(run_cost) AS cost_p95, max(run_cost) AS cost_max, "
        "sum(run_cost) AS cost, quantileExact(0.5)(steps) AS steps_p50, "
        "quantileExact(0.95)(steps) AS steps_p95, max(steps) AS steps_max, "
        "sum(run_cost) - sum(run_tool_cost) AS model_cost, sum(run_tool_cost) AS tool_cost "
        f"FROM ({runs}) GROUP BY agent ORDER BY cost DESC, agent",
        params,
    )


def top_runs(
    reader: Reader,
    since: datetime,
    until: datetime,
    scope: Scope,
    limit: int = 20,
    agent: str | None = None,
    customer: str | None = None,
) -> QueryResult:
    """The most expensive runs started in ``[since, until)``, most expensive first (ties by
    run id)."""
    runs, params = _per_run(since, until, scope)
    # Filtered on the one-row-per-run subquery's output (its names are the run's columns).
    outer = ["1"]
    for name, value in (("agent", agent), ("customer", customer)):
        if value is not None:
            outer.append(f"{name} = {{{name}:String}}")
            params[name] = value
    params["limit"] = limit
    return reader.query(
        "SELECT run_id, agent, customer, session_id, started, steps, tool_steps, "
        "run_cost AS cost, run_tool_cost AS tool_cost, input_tokens, output_tokens "
        f"FROM ({runs}) WHERE {' AND '.join(outer)} "
        "ORDER BY cost DESC, run_id LIMIT {limit:UInt32}",
        params,
    )


def run_steps(reader: Reader, run_id: str, scope: Scope) -> QueryResult:
    """One run's events in order (step, time, model or tool, tokens, cost, latency): the
    waterfall. The run's minutes bound the ledger read (its primary key starts with time)."""
    condition, params = scope
    params = {**params, "run": run_id}
    bounds = reader.query(
        f"SELECT min(window_start), max(window_start) FROM {MINUTES} "
        f"WHERE run_id = {{run:String}} AND {condition}",
        params,
    ).rows
    first, last = (instant(value) for value in bounds[0]) if bounds else (None, None)
    if first is None or last is None or first.year < 1980:  # no such run (or not the caller's)
        return QueryResult(STEP_COLUMNS, [])
    params.update(lo=first, hi=last + timedelta(minutes=1))
    return reader.query(
        f"SELECT {', '.join(STEP_SQL)} FROM ledger FINAL WHERE event_time >= {{lo:DateTime}} "
        "AND event_time < {hi:DateTime} AND run_id = {run:String} AND " + condition + " "
        "ORDER BY event_time, step, event_id",
        params,
    )


STEP_SQL = (
    "step",
    "event_time",
    "if(tool != '', 'tool', 'model') AS kind",
    "if(tool != '', tool, model) AS name",
    "agent",
    "input_tokens",
    "output_tokens",
    "cost_total AS cost",
    "latency_ms",
    "event_id",
    "parent",
)
STEP_COLUMNS = [text.rsplit(" ", 1)[-1] for text in STEP_SQL]


def sessions(
    reader: Reader, since: datetime, until: datetime, scope: Scope, limit: int = 50
) -> QueryResult:
    """Cost per session (conversation): its runs, steps and cost, most expensive first."""
    where, params = _window(since, until, scope)
    params["limit"] = limit
    return reader.query(
        "SELECT session_id, uniqExact(run_id) AS runs, sum(events) AS steps, "
        "sum(cost_total) AS cost, min(window_start) AS started "
        f"FROM {MINUTES} FINAL WHERE {where} AND session_id != '' GROUP BY session_id "
        "ORDER BY cost DESC, session_id LIMIT {limit:UInt32}",
        params,
    )


def spend_by_customer(
    reader: Reader,
    since: datetime,
    until: datetime,
    scope: Scope,
    by_feature: bool = False,
    granularity: str = "none",
) -> QueryResult:
    """Cost per customer ('' = calls without one), optionally per feature and per day/week/
    month (the trend; days are UTC), over ``[since, until)`` to the millisecond: whole days from
    ``customer_day``, whole hours from ``customer_hour``, the partial hours at the edges from
    ``ledger FINAL`` (``sinks.windows``), so a period ending now counts today too."""
    condition, params = scope
    keys = ["customer", *(["feature"] if by_feature else [])]
    periods = {"none": None, "day": "toDate", "week": "toMonday", "month": "toStartOfMonth"}
    if granularity not in periods:
        raise ValueError(f"granularity {granularity!r}: one of {', '.join(periods)}")
    period = periods[granularity]
    inner = spend_source(
        keys,
        condition,
        period or "toDate",
        tables=(CUSTOMER_TABLES["hour"], DAYS),
        measures=("events", "cost_total"),
        whole_days=has_whole_days(since, until),
    )
    select = [*(["day AS period"] if period else []), *keys]
    group = ", ".join(column.split(" AS ")[-1] for column in select)
    order = f"{'period, ' if period else ''}cost DESC, {', '.join(keys)}"
    return reader.query(
        f"SELECT {', '.join(select)}, sum(m_events) AS events, sum(m_cost_total) AS cost "
        f"FROM ({inner}) GROUP BY {group} ORDER BY {order}",
        {**params, **window_parameters(since, until)},
    )


# -- revenue and margin ------------------------------------------------------------------------


@dataclass(frozen=True)
class Margin:
    customer: str
    period_start: date
    period_end: date
    revenue: Decimal
    cost: Decimal

    @property
    def margin(self) -> Decimal:
        return self.revenue - self.cost

    @property
    def margin_pct(self) -> Decimal | None:
        """Gross margin as a percentage of revenue (None without revenue)."""
        return (
            (self.margin * 100 / self.revenue).quantize(Decimal("0.01")) if self.revenue else None
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer": self.customer,
            "period_start": self.period_start,
            "period_end": self.period_end,
            "revenue": self.revenue,
            "cost": self.cost,
            "margin": self.margin,
            "margin_pct": self.margin_pct,
            "at_loss": self.margin < 0,
        }


def margins(reader: Reader, since: date, until: date) -> list[Margin]:
    """Gross margin of every revenue period overlapping ``[since, until)``: the period's revenue
    against the customer's cost over the same days (every team: revenue is not a team's)."""
    revenue = reader.query(
        "SELECT customer, period_start, period_end, amount FROM customer_revenue FINAL "
        "WHERE period_end > {lo:Date} AND period_start < {hi:Date} "
        "ORDER BY customer, period_start, period_end",
        {"lo": since, "hi": until},
    ).rows
    if not revenue:
        return []
    lo, hi = min(r[1] for r in revenue), max(r[2] for r in revenue)
    daily: dict[str, list[tuple[date, Decimal]]] = defaultdict(list)
    for customer, day, cost in reader.query(
        f"SELECT customer, toDate(window_start) AS day, sum(cost_total) FROM {DAYS} FINAL "
        "WHERE window_start >= {lo:Date} AND window_start < {hi:Date} "
        "AND customer IN {names:Array(String)} GROUP BY customer, day",
        {"lo": lo, "hi": hi, "names": sorted({r[0] for r in revenue})},
    ).rows:
        daily[customer].append((day, Decimal(cost)))
    return [
        Margin(
            customer,
            start,
            end,
            Decimal(amount),
            sum((c for day, c in daily[customer] if start <= day < end), Decimal(0)),
        )
        for customer, start, end, amount in revenue
    ]


__all__ = [
    "Margin",
    "margins",
    "run_steps",
    "runs_by_agent",
    "sessions",
    "spend_by_customer",
    "top_runs",
]
