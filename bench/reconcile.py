"""Reconciliation benchmark: load a month of provider reports and compute the variance over a
generated ledger (``bench.reports.generate``: N rows over 30 days, 4 models, 5 teams).

Reports are built from the ledger's own daily sums per (provider, model, team → project) in the
providers' documented formats, with gpt-4o's input billed 10 % above our rate. Timed (median of
``--runs``): parse + load of every report, the same load again (unchanged: nothing written),
``compute_variance`` for the month, and the raw limit, one ``GROUP BY`` of ``ledger FINAL`` by
day, provider, model and team (what any comparison must read). Run:
``python -m bench.reconcile --rows 2000000 --runs 3``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.common import machine_facts, ratio
from bench.reports import SPAN_DAYS, generate
from spendstream.pricing import default_pricer
from spendstream.reconcile.ledger_side import AccountMap, ledger_cells
from spendstream.reconcile.providers import parse_pages
from spendstream.reconcile.store import InvoiceStore
from spendstream.reconcile.variance import compute_variance
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from spendstream.worker.schema import migrate
from tests.support import provider_reports as reports

TEAMS = ("search", "support", "growth", "research", "platform")
SUMS_SQL = """
SELECT toDate(event_time) AS day, provider, model, team,
    sum(input_tokens - cache_read_tokens) AS input, sum(cache_read_tokens) AS cache_read,
    sum(output_tokens) AS output, sum(request_count) AS requests
FROM ledger FINAL GROUP BY day, provider, model, team
"""
RAW_SQL = """
SELECT toDate(event_time) AS day, provider, model, team, sum(cost_total), sum(input_tokens),
    sum(output_tokens), sum(request_count)
FROM ledger FINAL
WHERE event_time >= {start:DateTime64(3)} AND event_time < {end:DateTime64(3)}
GROUP BY day, provider, model, team
"""
PER_MILLION = {  # what the provider bills; gpt-4o input drifted 2.50 -> 2.75
    "gpt-4o": {"input": "2.75", "cache_read": "0.25", "cache_write": "0", "output": "10"},
    "gpt-4o-mini": {"input": "0.15", "cache_read": "0.015", "cache_write": "0", "output": "0.6"},
    "claude-sonnet-4-5": {"input": "3", "cache_read": "0.3", "cache_write": "0", "output": "15"},
    "claude-haiku-4-5": {"input": "1", "cache_read": "0.1", "cache_write": "0", "output": "5"},
}


def provider_pages(client: Any) -> dict[str, list[Any]]:
    usage: dict[str, dict[Any, dict[str, int]]] = {"openai": {}, "anthropic": {}}
    for day, provider, model, team, inputs, cache_read, output, requests in client.query(
        SUMS_SQL
    ).result_rows:
        usage[provider][(day, f"proj_{team}", model)] = {
            "input": int(inputs),
            "cache_read": int(cache_read),
            "cache_write": 0,
            "output": int(output),
            "requests": int(requests),
        }
    rates = {m: {k: Decimal(v) for k, v in r.items()} for m, r in PER_MILLION.items()}
    return {
        "openai-costs": reports.openai_costs(usage["openai"], rates),
        "openai-usage": reports.openai_usage(usage["openai"]),
        "anthropic-cost": reports.anthropic_cost(usage["anthropic"], rates),
        "anthropic-usage": reports.anthropic_usage(usage["anthropic"]),
    }


def timed(action: Callable[[], Any], runs: int) -> tuple[float, Any]:
    seconds, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = action()
        seconds.append(time.perf_counter() - started)
    return round(statistics.median(seconds) * 1000, 1), result


def run(rows: int, runs: int, work: Path) -> dict[str, Any]:
    client = connect(f"chdb://{work / 'clickhouse'}", "bench_reconcile")
    migrate(client)
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    generated = generate(client, rows, end)
    pages = provider_pages(client)
    # Round-trip through JSON text, as saved or fetched responses arrive.
    texts = {name: [reports.dumps(page) for page in items] for name, items in pages.items()}
    store = InvoiceStore(client)

    def load() -> int:
        written = 0
        for name, items in texts.items():
            decoded = [(name, json.loads(text, parse_float=Decimal)) for text in items]
            written += store.load(parse_pages(name.split("-")[0], decoded), name).lines_written
        return written

    first_ms, first_written = timed(load, 1)
    reload_ms, rewritten = timed(load, runs)
    start, stop = (end - timedelta(days=SPAN_DAYS + 1)).date(), (end + timedelta(days=1)).date()
    accounts = {"openai": AccountMap({f"proj_{t}": {"team": t} for t in TEAMS})}
    pricer, reader = default_pricer(), ClientReader(client)
    variance_ms, cells = timed(
        lambda: compute_variance(reader, store.lines(start, stop), pricer, accounts, start, stop),
        runs,
    )
    bounds = {"start": end - timedelta(days=SPAN_DAYS + 1), "end": end + timedelta(days=1)}
    raw_ms, _ = timed(lambda: client.query(RAW_SQL, parameters=bounds), runs)
    providers = {"openai": accounts["openai"], "anthropic": AccountMap({})}
    ledger_ms, _ = timed(
        lambda: ledger_cells(reader, pricer, providers, bounds["start"], bounds["end"]), runs
    )
    drift = sum((c.variance.price_drift for c in cells), Decimal(0))
    exact = all(c.variance.explained == c.variance.difference for c in cells)
    return {
        **generated,
        "invoice_lines": first_written,
        "load_ms": first_ms,
        "reload_unchanged_ms": reload_ms,
        "reload_lines_written": rewritten,
        "cells": len(cells),
        "variance_ms": variance_ms,
        "ledger_side_ms": ledger_ms,
        "raw_group_by_ms": raw_ms,
        "variance_vs_raw": ratio(variance_ms, raw_ms),
        "price_drift_usd": str(drift),
        "parts_add_up_exactly": exact,
        "machine": machine_facts(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reconcile")
    parser.add_argument("--rows", type=int, default=2_000_000, help="generated ledger rows")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as work:
        print(json.dumps(run(args.rows, args.runs, Path(work)), indent=2, default=str))


if __name__ == "__main__":
    main()
