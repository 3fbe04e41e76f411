"""Caching, embeddings, the recommendations (one client, and the pool of four clients the API and
the CLI read through, with or without a worker), team-scoped caching and the ``cache_savings``,
``cost_by_unit`` and ``prompt_length_by_feature`` audits over a kept 10 M-event ledger, timed,
answers kept.

    .venv/bin/python -m bench.advice --data DIR --label after [--runs 3]

Before/after between two code trees: export the older one (``git archive <commit> | tar -x -C
OLD``) and run this module from each tree in alternate processes on the same ledger
(``PYTHONPATH=OLD python -m bench.advice --label before …``; the older tree needs this file
copied in). Each run pickles its answers beside its results; ``--compare A.pkl B.pkl …`` tells
whether every answer is equal and prints the median, p95 (nearest rank) and range of each case
per label. ``--only`` times some cases alone (e.g. ``--only recommendations,recommendations_pooled
--runs 20`` for their p95). The pending migrations are applied first (their time reported).
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, percentile
from spendstream.advice import recommend
from spendstream.config import InsightsSettings
from spendstream.insights import Context, Window, run_insight
from spendstream.pricing import default_pricer
from spendstream.sinks.access import ClientReader, direct_reader
from spendstream.sinks.audits import AUDITS
from spendstream.sinks.client import connect
from spendstream.worker.schema import migrate


def whole_period(data: Path, client: Any) -> Context:
    """The kept ledger's whole period (a day either side), read on one client."""
    end = datetime.fromisoformat((data / "bench-end.txt").read_text().strip())
    window = Window(end - timedelta(days=31), end + timedelta(days=1))
    settings = InsightsSettings(batch_features=["summarise"])
    return Context(ClientReader(client), default_pricer(), settings, window)


def cases(data: Path, database: str) -> tuple[dict[str, Callable[[], Any]], Any, float]:
    client = connect(f"chdb://{data}", database)
    started = time.perf_counter()
    applied = migrate(client)
    migrate_s = time.perf_counter() - started
    print(f"migrated {applied} in {migrate_s:.1f} s", flush=True)
    one = whole_period(data, client)
    window = one.window
    pool = direct_reader(f"chdb://{data}", database)  # the CLI's direct read; the API's size
    team = replace(one, window=replace(window, scope=(("team", "search"),)))

    def audit(name: str) -> Any:
        query = AUDITS[name]
        parameters = query.parameters(window.since, window.until)
        return client.query(query.sql, parameters=parameters).result_rows

    found: dict[str, Callable[[], Any]] = {
        "caching": lambda: run_insight("caching", one).rows,
        "embeddings": lambda: run_insight("embeddings", one).rows,
        "recommendations": lambda: recommend.build(one, 32),
        "recommendations_pooled": lambda: recommend.build(replace(one, reader=pool), 32),
        "caching_team": lambda: run_insight("caching", team).rows,
        "cache_savings": lambda: audit("cache_savings"),
        "cost_by_unit": lambda: audit("cost_by_unit"),
        "prompt_length_by_feature": lambda: audit("prompt_length_by_feature"),
    }
    return found, (client, pool), migrate_s


def run(
    data: Path, database: str, label: str, runs: int, out: Path, only: list[str] | None = None
) -> Path:
    found, (client, pool), migrate_s = cases(data, database)
    if only:
        unknown = set(only) - set(found)
        if unknown:
            raise SystemExit(f"unknown cases {sorted(unknown)}; known: {', '.join(found)}")
        found = {name: case for name, case in found.items() if name in only}
    result: dict[str, Any] = {"label": label, "migrate_s": migrate_s, "ms": {}, "answers": {}}
    result["load_start"] = os.getloadavg()
    for _ in range(runs):
        for name, case in found.items():
            began = time.perf_counter()
            answer = case()
            ms = (time.perf_counter() - began) * 1000
            result["ms"].setdefault(name, []).append(round(ms, 1))
            result["answers"][name] = answer
            print(f"{label:8} {name:24} {ms:9.1f} ms  load {os.getloadavg()[0]:.1f}", flush=True)
    result["load_end"] = os.getloadavg()
    summarise({(name, label): ms for name, ms in result["ms"].items()})
    pool.close()
    client.close()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"advice-{label}-{time.strftime('%Y%m%dT%H%M%S')}.pkl"
    path.write_bytes(pickle.dumps(result))
    return path


def summarise(timings: dict[tuple[str, str], list[float]]) -> None:
    """Median, p95 (nearest rank) and range of each case and label."""
    for (name, label), ms in sorted(timings.items()):
        middle, p95 = statistics.median(ms), percentile(ms, 0.95)
        print(
            f"{name:24} {label:8} median {middle:6.0f} ms  p95 {p95:6.0f} ms  "
            f"({min(ms):.0f}-{max(ms):.0f}, n={len(ms)})"
        )


def compare(paths: list[Path]) -> None:
    """Whether every run's answers equal the first's (the cases both ran), then median, p95 and
    range per case and label."""
    loaded = [pickle.loads(path.read_bytes()) for path in paths]
    first = loaded[0]["answers"]
    timings: dict[tuple[str, str], list[float]] = {}
    for each in loaded:
        shared = set(first) & set(each["answers"])
        equal = all(each["answers"][name] == first[name] for name in shared)
        print(
            f"{each['label']:8} load {each['load_start'][0]:.1f}-{each['load_end'][0]:.1f}: "
            f"every answer of {len(shared)} cases equal: {equal}"
        )
        for name, ms in each["ms"].items():
            timings.setdefault((name, each["label"]), []).extend(ms)
    summarise(timings)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.advice")
    parser.add_argument("--data", type=Path, help="a kept ledger (a copy)")
    parser.add_argument("--database", default="bench_explain", help="its database")
    parser.add_argument("--label", default="after", help="names this code tree's runs")
    parser.add_argument("--runs", type=int, default=3, help="runs per case")
    parser.add_argument("--only", help="comma-separated cases to time (default: every case)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "advice")
    parser.add_argument("--compare", type=Path, nargs="+", help="pickled runs to compare")
    args = parser.parse_args(argv)
    if args.compare:
        compare(args.compare)
        return
    if args.data is None:
        parser.error("--data is required to run")
    only = args.only.split(",") if args.only else None
    path = run(args.data, args.database, args.label, args.runs, args.out, only)
    print(f"[advice] answers: {path}")


if __name__ == "__main__":
    main()
