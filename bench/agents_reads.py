"""Runs and customers reads at the scale of 10 M events (docs/agents.md).

The rollups are filled by SQL as 10 M events of 1.15 M agent runs would fill them (runs of
about 9 steps over 30 days, 1-2 minute rows per run, three agents, 2,000 customers, every fourth
step a tool), and ``agent_runs`` (one row per run, migration 1102) from them by the migration's
own backfill: the read path is what is measured. Each read runs 20 times; p50 and p95 in
milliseconds. chDB in-process has no query_log, so memory is measured as the smallest
``max_memory_usage`` cap (of 16 MB doubling to 2 GB) each read completes under. Then the
writer's extra refresh step (the runs of ten touched minutes recomputed) is timed.

    python -m bench.agents_reads [runs]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
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
from spendstream.sinks.ledger import window_starts
from spendstream.sinks.run_rollup import RUNS_BACKFILL, RUNS_REFRESH_SQL
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


def smallest_cap(directory: str, read: Callable[[ClientReader], object]) -> str:
    """The smallest memory cap (16 MB doubling) under which ``read`` completes."""
    cap = 16
    while cap <= 2048:
        capped = connect(
            f"chdb://{directory}/ch",
            "spendstream",
            settings={"max_memory_usage": cap * 1_000_000},
        )
        try:
            read(ClientReader(capped))
            return f"<= {cap} MB"
        except Exception:
            cap *= 2
        finally:
            capped.close()
    return "> 2 GB"


def timed(label: str, read: object, repeat: int = 20) -> None:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        read()  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))]
    print(f"{label:<34} p50 {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms")


def main(runs: int = 1_150_000) -> None:
    with tempfile.TemporaryDirectory() as directory:
        client = connect(f"chdb://{directory}/ch", "spendstream")
        migrate(client)
        started = time.perf_counter()
        fill(client, runs)
        client.command("OPTIMIZE TABLE agent_minute FINAL")
        client.command("OPTIMIZE TABLE customer_day FINAL")
        client.command(RUNS_BACKFILL)
        client.command("OPTIMIZE TABLE agent_runs FINAL")
        [[rows, events]] = client.query("SELECT count(), sum(events) FROM agent_minute").result_rows
        print(
            f"{runs:,} runs, {events:,} events, {rows:,} agent_minute rows "
            f"(filled in {time.perf_counter() - started:.1f} s)"
        )
        reader = ClientReader(client)
        since, until = START, START + timedelta(days=30)
        week = (START + timedelta(days=23), START + timedelta(days=30))
        reads: list[tuple[str, Callable[[ClientReader], object]]] = [
            ("runs per agent, 30 days", lambda r: runs_by_agent(r, since, until, EVERY)),
            ("runs per agent, 7 days", lambda r: runs_by_agent(r, *week, EVERY)),
            ("top 20 runs, 7 days", lambda r: top_runs(r, *week, EVERY, 20)),
            ("top 20 runs, 30 days", lambda r: top_runs(r, since, until, EVERY, 20)),
            ("one run's waterfall (no ledger)", lambda r: run_steps(r, "run-777", EVERY)),
            ("top 50 sessions, 7 days", lambda r: sessions(r, *week, EVERY, 50)),
            ("cost per customer, 30 days", lambda r: spend_by_customer(r, since, until, EVERY)),
            (
                "per customer x feature x day, 30 d",
                lambda r: spend_by_customer(r, since, until, EVERY, True, "day"),
            ),
        ]
        for label, read in reads:
            timed(label, lambda read=read: read(reader))
        for label, read in reads:
            print(f"{label:<34} memory {smallest_cap(directory, read)}")
        # The writer's step: the runs of ten touched minutes recomputed over their spans.
        last = START + timedelta(days=30) - timedelta(minutes=10)
        minutes = window_starts([last + timedelta(minutes=m) for m in range(10)], "minute")
        parameters = {"starts": minutes, "lo": minutes[0], "hi": minutes[-1] + timedelta(minutes=1)}
        timed(
            "refresh: runs of 10 touched minutes",
            lambda: client.command(RUNS_REFRESH_SQL, parameters=parameters),
        )
        client.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_150_000)
