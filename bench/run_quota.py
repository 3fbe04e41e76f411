"""Run quotas against looping agents (``python -m bench.run_quota [--trials 5]``), results in
``bench/results/`` and docs/benchmarks-quotas.md "Run quotas".

A real worker (Tansu, chDB) decides two run quotas (``group_by = ["run_id"]``): $0.05 per run
of agent ``looper`` and 60 steps per run of agent ``stepper``.

1. One process: a looping agent (``bench.run_loop``, $0.0070 a step) runs until stopped, for
   each quota and ``--trials`` runs; the overshoot is counted in steps past the limit (the
   claim: stopped within one step: 0 steps past a steps limit, < 1 step's cost past a USD one).
2. Three processes step the same run (one ``run_id``) every ``pause`` seconds until stopped; the
   ledger's steps for the run minus the limit is the overshoot, set against the documented bound
   (docs/guardrails.md): ``min(R x D, (P - 1) x L) + P x T x c`` with P = 3, T = 1, c = 1 step,
   R = P / pause steps per second and D = 6 s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.common import machine_facts, write_results
from bench.worker import write_worker_config
from spendstream.embedded import TansuBroker
from tests.support.worker import WorkerProcess

USAGE = "spendstream.usage.v1"  # the SDK's default topic
STEP_LIMIT = 60
USD_LIMIT = Decimal("0.05")
REACTION_BOUND_S = 6.0  # D, as documented in docs/guardrails.md
CONFIG = f"""
[guardrails]
snapshot_every_s = 1.0

[[quotas]]
name = "run-dollars"
scope = {{ agent = "looper" }}
group_by = ["run_id"]
limit = "{USD_LIMIT}"
per = "day"

[[quotas]]
name = "run-steps"
scope = {{ agent = "stepper" }}
group_by = ["run_id"]
steps = {STEP_LIMIT}
per = "day"
"""


def loops(
    bootstrap: str, tmp: Path, agent: str, run_id: str, processes: int, pause: float
) -> list[dict[str, Any]]:
    start_at = time.time() + 8  # every process has a fresh view by then
    running = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.run_loop",
                bootstrap,
                str(tmp / f"spool-{run_id}-{index}"),
                "--run-id",
                run_id,
                "--agent",
                agent,
                "--pause",
                str(pause),
                "--start-at",
                str(start_at),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for index in range(processes)
    ]
    results = []
    for process in running:
        stdout, _ = process.communicate(timeout=180)
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    return results


def ledger_steps(worker: WorkerProcess, run_id: str, expected: int) -> tuple[int, Decimal]:
    """The run's steps and cost in the ledger, once it holds every recorded step."""
    deadline = time.time() + 60
    while True:
        [[steps, cost]] = worker.query(
            f"SELECT count(), sum(cost_total) FROM ledger FINAL WHERE run_id = '{run_id}'"
        ).rows
        if int(steps) >= expected or time.time() > deadline:
            return int(steps), Decimal(str(cost))
        time.sleep(0.5)


def one_process(bootstrap: str, tmp: Path, trials: int) -> list[dict[str, Any]]:
    rows = []
    for agent in ("stepper", "looper"):
        for _ in range(trials):
            run_id = f"one-{uuid.uuid4().hex[:12]}"
            [result] = loops(bootstrap, tmp, agent, run_id, 1, 0.0)
            cost = Decimal(result["cost"])
            steps = int(result["steps"])
            step_cost = cost / steps if steps else Decimal(0)
            over = (
                steps - STEP_LIMIT
                if agent == "stepper"
                else float((cost - USD_LIMIT) / step_cost)
                if step_cost
                else 0
            )
            rows.append(
                {
                    "quota": "steps" if agent == "stepper" else "usd",
                    "stopped": result["stopped"],
                    "steps": steps,
                    "cost": str(cost),
                    "over_limit_in_steps": over,
                }
            )
            print(rows[-1], flush=True)
    return rows


def three_processes(
    bootstrap: str, tmp: Path, worker: WorkerProcess, trials: int
) -> list[dict[str, Any]]:
    rows = []
    for pause in (0.2, 0.05):
        for _ in range(trials):
            run_id = f"three-{uuid.uuid4().hex[:12]}"
            results = loops(bootstrap, tmp, "stepper", run_id, 3, pause)
            made = sum(int(r["steps"]) for r in results)
            in_ledger, _cost = ledger_steps(worker, run_id, made)
            rate = 3 / pause
            bound = min(rate * REACTION_BOUND_S, 2 * STEP_LIMIT) + 3
            rows.append(
                {
                    "pause_s": pause,
                    "steps_per_s": rate,
                    "stopped": all(r["stopped"] for r in results),
                    "steps_made": made,
                    "steps_in_ledger": in_ledger,
                    "over_limit": in_ledger - STEP_LIMIT,
                    "bound": bound,
                    "per_process": [int(r["steps"]) for r in results],
                }
            )
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, Any] = {"stage": "run_quota", "machine": machine_facts()}
    with tempfile.TemporaryDirectory() as tmp_name, TansuBroker() as broker:
        tmp = Path(tmp_name)
        bootstrap = broker.bootstrap_servers
        config = write_worker_config(
            tmp / "w.toml", bootstrap, f"chdb://{tmp / 'ch'}", USAGE, CONFIG
        )
        worker = WorkerProcess(config, tmp / "worker.log").start()
        try:
            results["one_process"] = one_process(bootstrap, tmp, args.trials)
            results["three_processes"] = three_processes(bootstrap, tmp, worker, args.trials)
        finally:
            worker.stop()
    print(write_results(results))


if __name__ == "__main__":
    main()
