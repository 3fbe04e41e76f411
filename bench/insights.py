"""Insights benchmark: each insight's time over the generated ledger of ``bench.reports``,
then the recommendations (``spendstream recommend``) and a what-if (``spendstream whatif``).

    python -m bench.insights [--rows 10000000] [--runs 7] [--quick]

The ledger is generated inside ClickHouse (``bench.reports.generate``: 10 M rows over 30 days by
default); every insight then runs ``runs`` times over the whole period through the same code as
``spendstream insights`` (SQL plus exact Decimal re-pricing). Reported per insight: p50 and p95
of the wall times (nearest rank), in milliseconds. Results go to ``bench/results``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import machine_facts, percentile, write_results
from bench.reports import SPAN_DAYS, generate
from spendstream.advice.recommend import build
from spendstream.advice.whatif import WhatIfRequest, simulate
from spendstream.config import InsightsSettings
from spendstream.insights import INSIGHTS, Context, Window, run_insight
from spendstream.insights.outcomes import OUTCOME_COLUMNS
from spendstream.pricing import default_pricer
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from spendstream.worker.schema import migrate

# One outcome per 20 ledger rows, over the same 30 days and features (for ``outcomes``).
OUTCOMES_SQL = f"""
INSERT INTO outcomes ({", ".join(OUTCOME_COLUMNS)})
SELECT concat('out-', toString(number)), {{start:DateTime64(3)}}
    + toIntervalMillisecond(cityHash64(number, 11) % {{span_ms:UInt64}}) AS event_time,
    event_time, ['resolved', 'conversion'][number % 2 + 1], toDecimal128(1 + number % 3, 18),
    ['search', 'support', 'growth', 'research', 'platform'][cityHash64(number, 12) % 5 + 1] AS team,
    'app-1', 'prod', ['qa', 'summarise', 'triage'][cityHash64(number, 13) % 3 + 1] AS feature, '',
    map('team', team, 'feature', feature), 0, number
FROM numbers({{rows:UInt64}})
"""


def _recommendations(context: Context) -> int:
    return len(build(context, SPAN_DAYS + 2))


def _whatif(context: Context, from_ledger: bool = False) -> int:
    """Every gpt-4o call of the period moved to gpt-4o-mini, one feature sent to batch (from
    the rollups; ``from_ledger``: grouping ``ledger FINAL``, the read before migration 70)."""
    request = WhatIfRequest.model_validate(
        {
            "since": context.window.since,
            "until": context.window.until,
            "changes": [
                {"action": "model", "scope": {"model": "gpt-4o"}, "to_model": "gpt-4o-mini"},
                {"action": "batch", "scope": {"feature": "summarise"}},
            ],
        }
    )
    found = simulate(context.reader, context.pricer, request, from_ledger=from_ledger)
    return len(found["by_day"]["rows"])


def _whatif_ledger(context: Context) -> int:
    return _whatif(context, from_ledger=True)


# Beside the insights: the ranked recommendations (every insight at once) and a what-if.
EXTRA = {"recommendations": _recommendations, "whatif": _whatif, "whatif_ledger": _whatif_ledger}


def run_insights(
    dsn: str, rows: int, runs: int, names: list[str] | None = None, before: bool = False
) -> dict[str, Any]:
    """Generate the ledger once, then time every insight ``runs`` times (milliseconds);
    ``before``: each insight and the recommendations also as ``<name>@ledger``, every figure
    read from ``ledger FINAL`` (the reads before the insight cells, migration 75), in turn."""
    client = connect(dsn, f"bench_insights_{int(time.time())}")
    migrate(client)
    end = datetime.now(UTC).replace(microsecond=0)
    generated = generate(client, rows, end)
    client.command(
        OUTCOMES_SQL,
        parameters={
            "start": end - timedelta(days=SPAN_DAYS),
            "span_ms": SPAN_DAYS * 86_400_000,
            "rows": rows // 20,
        },
    )
    window = Window(end - timedelta(days=SPAN_DAYS + 1), end + timedelta(days=1))
    settings = InsightsSettings(batch_features=["summarise"])
    context = Context(ClientReader(client), default_pricer(), settings, window)
    ledger_context = replace(context, from_ledger=True)
    cases: dict[str, tuple[str, Context]] = {}
    for name in names or [*INSIGHTS, *EXTRA]:
        cases[name] = (name, context)
        if before and not name.startswith("whatif"):  # what-if has its own ledger variant
            cases[f"{name}@ledger"] = (name, ledger_context)
    timings: dict[str, list[float]] = {case: [] for case in cases}
    result_rows: dict[str, int] = {}
    load_before = os.getloadavg()
    for _ in range(runs):
        for case, (name, each) in cases.items():
            started = time.perf_counter()
            found = EXTRA[name](each) if name in EXTRA else len(run_insight(name, each).rows)
            timings[case].append((time.perf_counter() - started) * 1000)
            result_rows[case] = found
            print(f"  {case:<24} {timings[case][-1]:>9.1f} ms", flush=True)
    client.close()
    return {
        **generated,
        "load_average": {"start": load_before, "end": os.getloadavg()},
        "runs": runs,
        "result_rows": result_rows,
        "query_ms": {
            name: {
                "p50": round(percentile(ms, 0.5), 1),
                "p95": round(percentile(ms, 0.95), 1),
                "runs": [round(value, 1) for value in ms],
            }
            for name, ms in timings.items()
        },
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.insights")
    parser.add_argument("--rows", type=int, default=10_000_000, help="generated ledger rows")
    parser.add_argument("--runs", type=int, default=7, help="runs per insight")
    parser.add_argument("--quick", action="store_true", help="20,000 rows, 2 runs")
    parser.add_argument("--only", default="", help="comma list of insights (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    parser.add_argument(
        "--before", action="store_true", help="also every insight from ledger FINAL (@ledger)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.runs = 20_000, 2
    with tempfile.TemporaryDirectory(prefix="bench-insights-") as work:
        names = [name for name in args.only.split(",") if name] or None
        result = run_insights(f"chdb://{work}/clickhouse", args.rows, args.runs, names, args.before)
    results = {"machine": machine_facts(), "stages": {"insights": result}}
    path = write_results(results, args.out or Path(__file__).parent / "results")
    for name, figure in result["query_ms"].items():
        print(f"  {name:<24} p50 {figure['p50']:>9} ms   p95 {figure['p95']:>9} ms")
    print(f"[bench] {result['rows']} rows generated in {result['generate_s']} s; results: {path}")
    return results


if __name__ == "__main__":
    main()
