"""One row per run (migration 1102, docs/agents.md "Reads at scale").

``agent_minute`` holds a row per run and minute: the per-agent percentiles over a month grouped a
million runs out of it on every read (p95 554 ms at 10 M events). ``agent_runs`` keeps each run's
totals ready: cost, tool cost, steps, tool steps, tokens, first and last minute, keyed by
``(agent, run_id, team)`` so a team-scoped read stays exact (a run whose events carry two teams
is one row per team).

It is recomputed, not accumulated: the refresh step below takes the runs of the minutes a batch
touched and rebuilds their totals from ``agent_minute`` (itself recomputed from the deduplicated
ledger), over each run's whole span, so a redelivered batch or a re-rating leaves the same row.
That is why the engine is a ``ReplacingMergeTree`` on the computation time rather than a
Summing/Aggregating one: a sum of deltas would count a redelivery twice. Money is
``Decimal(38, 18)`` like every rollup, so the sum over runs equals the ledger's to the last digit.
"""

from __future__ import annotations

from spendstream.sinks.migrations import AGENT_TABLES, MONEY, Migration

RUNS_TABLE = "agent_runs"
MINUTES = AGENT_TABLES["minute"]
RUN_KEY = ("agent", "run_id", "team")
# Each run column and the agent_minute aggregate that recomputes it.
RUN_MEASURES: tuple[tuple[str, str, str], ...] = (
    ("customer", "String", "any(customer)"),
    ("session_id", "String", "any(session_id)"),
    ("first_minute", "DateTime('UTC')", "min(window_start)"),
    ("last_minute", "DateTime('UTC')", "max(window_start)"),
    ("steps", "UInt64", "sum(events)"),
    ("tool_steps", "UInt64", "sumIf(events, tool != '')"),
    ("input_tokens", "UInt64", "sum(input_tokens)"),
    ("output_tokens", "UInt64", "sum(output_tokens)"),
    ("cost", MONEY, "sum(cost_total)"),
    ("tool_cost", MONEY, "sumIf(cost_total, tool != '')"),
)

_DEFS = ",\n    ".join(f"{name} {kind}" for name, kind, _sql in RUN_MEASURES)
RUNS_DDL = f"""
CREATE TABLE IF NOT EXISTS {RUNS_TABLE} (
    agent LowCardinality(String),
    run_id String,
    team LowCardinality(String),
    {_DEFS},
    computed_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(computed_at)
ORDER BY ({", ".join(RUN_KEY)})
"""

_COLUMNS = ", ".join((*RUN_KEY, *(name for name, _kind, _sql in RUN_MEASURES), "computed_at"))
_AGGREGATES = ", ".join(f"{sql} AS {name}" for name, _kind, sql in RUN_MEASURES)
_INSERT = f"INSERT INTO {RUNS_TABLE} ({_COLUMNS}) "
_GROUP = f"GROUP BY {', '.join(RUN_KEY)}"

# Every run once, from the minute rollup (re-runnable: same keys, FINAL collapses).
RUNS_BACKFILL = (
    _INSERT + f"SELECT {', '.join(RUN_KEY)}, {_AGGREGATES}, now64(6) "
    f"FROM {MINUTES} FINAL WHERE run_id != '' {_GROUP}"
)

# The runs of the touched minutes (parameters ``starts``, ``lo``, ``hi``: the minute step's).
_TOUCHED = (
    f"SELECT DISTINCT agent, run_id FROM {MINUTES} WHERE window_start >= {{lo:DateTime}} "
    "AND window_start < {hi:DateTime} AND window_start IN {starts:Array(DateTime)} "
    "AND run_id != ''"
)
# Each touched run's whole span: its recorded first and last minute widened by the touched
# ones (a late event may extend a run either way). Read without FINAL: older versions of a row
# only narrow the span, so the bounds still cover it; the primary key bounds the minutes read.


def _span_edge(edge: str, column: str, param: str) -> str:
    """The touched runs' recorded ``edge`` (min/max) of ``column``, or ``param`` when further."""
    return (
        f"(SELECT {edge}(bound) FROM (SELECT {edge}OrNull({column}) AS bound FROM {RUNS_TABLE} "
        f"WHERE (agent, run_id) IN ({_TOUCHED}) UNION ALL SELECT {param}))"
    )


RUNS_REFRESH_SQL = (
    _INSERT + f"SELECT {', '.join(RUN_KEY)}, {_AGGREGATES}, now64(6) FROM {MINUTES} FINAL "
    f"WHERE (agent, run_id) IN ({_TOUCHED}) "
    f"AND window_start >= {_span_edge('min', 'first_minute', '{lo:DateTime}')} "
    f"AND window_start <= {_span_edge('max', 'last_minute', '{hi:DateTime}')} {_GROUP}"
)
"""Recompute every run a batch touched (a step of ``sinks.ledger.REFRESH_STEPS``)."""

MIGRATIONS = (Migration(1102, "agent_runs", (RUNS_DDL, RUNS_BACKFILL)),)

__all__ = ["MIGRATIONS", "RUNS_REFRESH_SQL", "RUNS_TABLE"]
