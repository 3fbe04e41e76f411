"""Runs and customers reads at the scale of 10 M events (docs/agents.md).

The rollups are filled by SQL as 10 M events of 1 M agent runs would fill them (runs of 10
steps over 30 days, 1-2 minute rows per run, three agents, 2,000 customers, every fourth step a
tool): the read path is what is measured, not the writer. Each read runs 20 times; p50 and p95
in milliseconds (chDB in-process has no query_log: memory is not measured here).

    python -m bench.agents_reads [runs]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

from spendstream.sinks.access import ClientReader
from spendstream.sinks.agent_views import (
    Scope,
    run_steps,
    runs_by_agent,
    sessions,
    spend_by_customer,
    top_runs,
)
from spendstream.sinks.client import connect
from spendstream.worker.schema import migrate

START = datetime(2026, 10, 1, tzinfo=UTC)
EVERY: Scope = ("1", {})


def fill(client: object, runs: int) -> None:
    # One row per (run, minute, model-or-tool): 2 minute rows for a third of the runs.
    client.command(  # type: ignore[attr-defined]
        f"""
INSERT INTO agent_minute (window_start, team, feature, customer, agent, session_id, run_id, tool,
  events, requests, unpriced_events, input_tokens, output_tokens, cache_read_tokens,
  cache_write_tokens, reasoning_tokens, cost_input, cost_output, cost_cache_read,
  cost_cache_write, cost_reasoning, cost_total, computed_at)
SELECT toDateTime('2026-10-01 00:00:00', 'UTC') + toIntervalMinute(intDiv(r * 43200, {runs}) + m),
  ['search','support','growth'][r % 3 + 1], ['chat','qa'][r % 2 + 1],
  concat('c', toString(r % 2000)), ['triage','research','coder'][r % 3 + 1],
  concat('s', toString(intDiv(r, 3))), concat('run-', toString(r)),
  if(t, 'web_search', ''), if(t, 2, 8 - 3 * m), if(t, 2, 8 - 3 * m), 0,
  if(t, 0, 9000 + r % 5000), if(t, 0, 900), 0, 0, 0,
  toDecimal128(if(t, 0, (9000 + r % 5000) * 0.0000025), 18), toDecimal128(if(t, 0, 0.009), 18),
  0, 0, 0, toDecimal128(if(t, 0.02, (9000 + r % 5000) * 0.0000025 + 0.009), 18), now64(6)
FROM (SELECT number AS r FROM numbers({runs})) ARRAY JOIN [0, 1] AS t, [0, 1] AS m
WHERE m = 0 OR r % 3 = 0
"""
    )
    client.command(  # type: ignore[attr-defined]
        "INSERT INTO customer_day (window_start, team, feature, customer, events, requests, "
        "unpriced_events, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, "
        "reasoning_tokens, cost_input, cost_output, cost_cache_read, cost_cache_write, "
        "cost_reasoning, cost_total, computed_at) SELECT toStartOfDay(window_start), team, "
        "feature, customer, sum(events), sum(requests), 0, sum(input_tokens), "
        "sum(output_tokens), 0, 0, 0, sum(cost_input), sum(cost_output), 0, 0, 0, "
        "sum(cost_total), now64(6) FROM agent_minute GROUP BY 1, team, feature, customer"
    )


def timed(label: str, read: object, repeat: int = 20) -> None:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        read()  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))]
    print(f"{label:<34} p50 {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms")


def main(runs: int = 1_000_000) -> None:
    with tempfile.TemporaryDirectory() as directory:
        client = connect(f"chdb://{directory}/ch", "spendstream")
        migrate(client)
        started = time.perf_counter()
        fill(client, runs)
        client.command("OPTIMIZE TABLE agent_minute FINAL")
        client.command("OPTIMIZE TABLE customer_day FINAL")
        [[rows, events]] = client.query("SELECT count(), sum(events) FROM agent_minute").result_rows
        print(
            f"{runs:,} runs, {events:,} events, {rows:,} agent_minute rows "
            f"(filled in {time.perf_counter() - started:.1f} s)"
        )
        reader = ClientReader(client)
        since, until = START, START + timedelta(days=30)
        week = (START + timedelta(days=23), START + timedelta(days=30))
        timed("runs per agent, 30 days", lambda: runs_by_agent(reader, since, until, EVERY))
        timed("runs per agent, 7 days", lambda: runs_by_agent(reader, *week, EVERY))
        timed("top 20 runs, 7 days", lambda: top_runs(reader, *week, EVERY, 20))
        timed("one run's waterfall (no ledger)", lambda: run_steps(reader, "run-777", EVERY))
        timed("top 50 sessions, 7 days", lambda: sessions(reader, *week, EVERY, 50))
        timed("cost per customer, 30 days", lambda: spend_by_customer(reader, since, until, EVERY))
        timed(
            "per customer x feature x day, 30 d",
            lambda: spend_by_customer(reader, since, until, EVERY, True, "day"),
        )
        client.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
