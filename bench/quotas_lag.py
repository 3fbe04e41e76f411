"""Overshoot while the worker lags (stage 5 of ``python -m bench.quotas``; alone:
``python -m bench.quotas_lag [--bursts 0,50000,150000]``), results in ``bench/results/`` and
docs/benchmarks-quotas.md.

Three SDK processes (one thread each) admit, then record, $0.05 calls at ~50 a second against a
$5/day per-user quota, right after another team's burst of single-event messages was put on the
same partition (0 = an idle worker). The user spent one call earlier (the worker knows the key
and re-decides it every second). Reported per burst: ledger spend, the bound
``P x L + P x T x c``, the worker's lag for the runaway's calls (ledger ``ingested_at`` minus
``event_time``, the warm-up call left out) and how much of the burst was still unstored when
the runaway ended.
Then one process against a worker with ``[worker] batch_within_s = 8``: bound ``L + T x c``.
"""

from __future__ import annotations

import argparse
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.common import machine_facts, write_results
from bench.worker import write_worker_config
from spendstream.embedded import TansuBroker
from spendstream.producers import Recorder
from tests.support import burst as kit
from tests.support.worker import WorkerProcess, wait_until

LIMIT = Decimal(5)
TEAM = "lagteam"
LAG_QUOTA = kit.user_quota("lag", TEAM, LIMIT)
ALONE_CONFIG = f"""
[guardrails]
evaluate_every_s = 1.0
snapshot_every_s = 0.5
{LAG_QUOTA}"""


def count(worker: WorkerProcess, where: str) -> int:
    return int(worker.scalar(f"SELECT count() FROM ledger FINAL WHERE {where}"))


def run_lag(
    bootstrap: str, tmp: Path, worker: WorkerProcess, size: int, processes: int = 3
) -> dict[str, Any]:
    """One runaway of ``processes`` behind ``size`` events of another team's events."""
    user = f"lag-{size}-{processes}"
    tags = {"team": TEAM, "user": user}
    with Recorder(bootstrap_servers=bootstrap, spool_dir=str(tmp / f"warm-{user}")) as warm:
        warm.record(**kit.NICKEL, tags=tags)
    wait_until(lambda: count(worker, f"user = '{user}'") == 1, 120, "the warm-up call")
    other = kit.same_partition_team(TEAM)
    before = count(worker, f"team = '{other}'")
    kit.publish_burst(bootstrap, other, size)
    args = ["--threads", "1", "--seconds", "10", "--pause", "0.02"]
    stats = kit.runaway_results(
        [kit.start_runaway(bootstrap, tmp / f"{user}-{i}", tags, *args) for i in range(processes)]
    )
    unstored = before + size - count(worker, f"team = '{other}'")
    allowed = sum(int(s["allowed"]) for s in stats)
    wait_until(lambda: count(worker, f"user = '{user}'") == 1 + allowed, 900, "the runaway")
    wait_until(lambda: count(worker, f"team = '{other}'") == before + size, 900, "the burst")
    spent_sql = f"SELECT sum(cost_total) FROM ledger FINAL WHERE user = '{user}'"
    spent = Decimal(str(worker.scalar(spent_sql)))
    lag = worker.scalar(  # the runaway's calls: every event but the first (the warm-up call)
        "SELECT max(lag) FROM (SELECT dateDiff('millisecond', event_time, ingested_at) / 1000 "
        f"AS lag FROM ledger FINAL WHERE user = '{user}' ORDER BY event_time LIMIT 1, 100000)"
    )
    cost = kit.nickel_cost()
    bound = LIMIT + (processes - 1) * LIMIT + processes * cost
    return {
        "burst_events": size,
        "processes": processes,
        "spent_usd": str(spent),
        "bound_usd": str(bound),
        "within_bound": spent <= bound,
        "times_limit": round(float(spent / LIMIT), 2),
        "calls_allowed": allowed,
        "calls_denied": sum(int(s["denied"]) for s in stats),
        "max_lag_s": float(lag),
        "burst_unstored_when_runaway_ended": unstored,
    }


def bench_lag(bootstrap: str, tmp: Path, worker: WorkerProcess, bursts: list[int]) -> list[Any]:
    rows = []
    for size in bursts:
        rows.append(run_lag(bootstrap, tmp, worker, size))
        print(rows[-1], flush=True)
    return rows


def bench_batch_within(tmp: Path, within_s: float = 8.0) -> dict[str, Any]:
    """One process against a worker that waits ``within_s`` for each batch (own broker)."""
    with TansuBroker() as broker:
        config = write_worker_config(
            tmp / "within.toml",
            broker.bootstrap_servers,
            f"chdb://{tmp / 'ch-within'}",
            kit.USAGE_TOPIC,
            ALONE_CONFIG,
            worker=f"batch_within_s = {within_s}",
        )
        worker = WorkerProcess(config, tmp / "within.log").start()
        try:
            row = run_lag(broker.bootstrap_servers, tmp, worker, 0, processes=1)
        finally:
            worker.stop()
    row["batch_within_s"] = within_s
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bursts", default="0,50000,150000")
    args = parser.parse_args()
    bursts = [int(b) for b in args.bursts.split(",")]
    results: dict[str, Any] = {"stage": "quotas-lag", "machine": machine_facts()}
    with tempfile.TemporaryDirectory() as tmp_name, TansuBroker() as broker:
        tmp = Path(tmp_name)
        config = write_worker_config(
            tmp / "w.toml", broker.bootstrap_servers, f"chdb://{tmp / 'ch'}", kit.USAGE_TOPIC,
            ALONE_CONFIG,
        )  # fmt: skip
        worker = WorkerProcess(config, tmp / "worker.log").start()
        try:
            rows = bench_lag(broker.bootstrap_servers, tmp, worker, bursts)
            results["overshoot_under_lag"] = rows
        finally:
            worker.stop()
        results["batch_within"] = bench_batch_within(tmp)
        print(results["batch_within"], flush=True)
    print(write_results(results))


if __name__ == "__main__":
    main()
