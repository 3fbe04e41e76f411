"""Guardrails benchmarks (``python -m bench.quotas [--trials 100]``), results in
``bench/results/`` and docs/benchmarks-quotas.md:

1. ``admit()`` in-process p50/p99 next to ``record()`` (same recorder, same run; the view holds
   a decision for the key and two quotas apply).
2. ``POST /api/v1/admit`` on loopback (uvicorn, one keep-alive client, sequential) p50/p99.
3. Reaction time: from publishing the event that crosses a quota (kafka-python, acks=all) to
   every one of 2 SDK processes denying (each polls ``admit()`` every 0.2 ms), over N trials,
   through the real worker.
4. Overshoot vs spend rate: 2 processes x 2 threads run away against a $0.10 quota at three
   call rates; overshoot = ledger spend - limit.
5. Overshoot while the worker lags (``bench.quotas_lag``): 3 processes behind another team's
   burst of 0 (idle), 50,000 and 150,000 events; then 1 process with ``batch_within_s = 8``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaProducer

from bench.common import machine_facts, percentile, write_results
from bench.quotas_lag import LAG_QUOTA, bench_batch_within, bench_lag
from bench.worker import write_worker_config
from spendstream.auth.roles import Principal, Role
from spendstream.decisions import DecisionsMessage, QuotaSpec
from spendstream.embedded import TansuBroker
from spendstream.events import UsageEvent
from spendstream.producers import Recorder
from spendstream.producers.admission import AdmissionView
from spendstream.quotas.http import quota_router
from spendstream.quotas.overrides import OverrideRequest
from spendstream.quotas.publisher import KafkaDecisionPublisher
from tests.support.http_app import ServedApp, TokenAuthenticator
from tests.support.quota_data import SPECS, decision
from tests.support.quota_data import snapshot as sample_snapshot
from tests.support.worker import WorkerProcess, wait_until

TOPIC = "spendstream.quota.decisions.v1"
USAGE = "spendstream.usage.v1"  # the topic tests.support.admission_load records to
TEAM_RPM = QuotaSpec(
    name="team-rpm",
    scope={"team": ("support",)},
    unit="requests",
    limit=Decimal(10**9),
    per="minute",
)


def snapshot() -> DecisionsMessage:
    """user-daily (amy at $0.50 of $1) and a team requests quota: two quotas apply per call."""
    return sample_snapshot(decision("user=amy", "0.5", False), specs=(SPECS[0], TEAM_RPM))


def micros(samples: list[int]) -> dict[str, float]:
    return {
        "p50_us": round(percentile(samples, 0.5) / 1000, 2),
        "p99_us": round(percentile(samples, 0.99) / 1000, 2),
    }


def bench_admit(bootstrap: str, tmp: Path, calls: int = 50_000) -> dict[str, Any]:
    publisher = KafkaDecisionPublisher(bootstrap, TOPIC)
    publisher.publish(snapshot())
    recorder = Recorder(
        bootstrap_servers=bootstrap,
        topic="bench.quotas.record",
        spool_dir=str(tmp / "spool"),
        admission=True,
    )
    wait_until(lambda: recorder.admit("m", team="support", user="amy").quota != "", 30, "view")
    timed: dict[str, list[int]] = {"admit": [], "record": [], "admit_alone": []}
    clock = time.perf_counter_ns
    for _ in range(calls):  # admit() alone: the sender thread idle
        start = clock()
        recorder.admit("gpt-4o", 500, team="support", user="amy")
        timed["admit_alone"].append(clock() - start)
    for _ in range(calls):
        start = clock()
        recorder.admit("gpt-4o", 500, team="support", user="amy")
        middle = clock()
        recorder.record(
            provider="openai",
            model="gpt-4o",
            input_tokens=500,
            output_tokens=50,
            tags={"team": "support", "user": "amy"},
        )
        timed["admit"].append(middle - start)
        timed["record"].append(clock() - middle)
        if len(timed["admit"]) % 5000 == 0:
            publisher.publish(snapshot())  # keep the view fresh as the worker would
    recorder.close()
    publisher.close()
    admit, record = micros(timed["admit"][1000:]), micros(timed["record"][1000:])
    return {
        "calls": calls,
        "admit_alone": micros(timed["admit_alone"][1000:]),
        "admit": admit,
        "record": record,
        "admit_to_record_p50": round(admit["p50_us"] / record["p50_us"], 3),
        "admit_to_record_p99": round(admit["p99_us"] / record["p99_us"], 3),
    }


def no_override(request: OverrideRequest) -> dict[str, object]:
    raise RuntimeError("the admission benchmark sends no overrides")


def bench_http(requests: int = 3000) -> dict[str, Any]:
    view = AdmissionView(stale_after_s=3600)
    view.apply(snapshot())
    body = {"model": "gpt-4o", "tags": {"team": "support", "user": "amy"}}
    samples = []
    tokens = TokenAuthenticator({"x": Principal("bench", Role.SERVICE)})
    with (
        ServedApp(tokens, quota_router(view, no_override)) as served,
        httpx.Client(headers={"Authorization": "Bearer x"}) as client,
    ):
        url = f"{served.url}/api/v1/admit"
        for index in range(requests + 200):
            start = time.perf_counter_ns()
            assert client.post(url, json=body).status_code == 200
            if index >= 200:
                samples.append(time.perf_counter_ns() - start)
    result = micros(samples)
    return {
        "requests": requests,
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
    }


QUOTA_CONFIG = """
[guardrails]
snapshot_every_s = 1.0

[[quotas]]
name = "react"
scope = { app = "react" }
group_by = ["trial"]
requests = 1
per = "day"

[[quotas]]
name = "runaway"
scope = { app = "runaway" }
group_by = ["user"]
limit = "0.10"
per = "day"
"""


def bench_reaction(bootstrap: str, tmp: Path, worker: WorkerProcess, trials: int) -> dict[str, Any]:
    probes = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.quotas_probe", bootstrap, str(tmp / f"p{i}")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for probe in probes:
        assert probe.stdout is not None and probe.stdout.readline().strip() == "ready"
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    times = []
    for trial in range(trials):
        event = UsageEvent(
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=10,
            tags={"app": "react", "trial": str(trial)},
        )
        for probe in probes:
            assert probe.stdin is not None
            probe.stdin.write(f"trial={trial}\n")
            probe.stdin.flush()
        time.sleep(0.05)  # the probes are polling
        sent = time.time()
        producer.send(USAGE, event.to_json_bytes()).get(10)
        denied = []
        for probe in probes:
            assert probe.stdout is not None
            denied.append(float(probe.stdout.readline().split()[1]))
        times.append(max(denied) - sent)
    producer.close()
    for probe in probes:
        assert probe.stdin is not None
        probe.stdin.close()
        probe.wait(30)
    return {
        "trials": trials,
        "sdk_processes": 2,
        "p50_s": round(percentile(times, 0.5), 3),
        "p99_s": round(percentile(times, 0.99), 3),
        "max_s": round(max(times), 3),
    }


def bench_overshoot(bootstrap: str, tmp: Path, worker: WorkerProcess) -> list[dict[str, Any]]:
    rows = []
    for index, pause in enumerate(("0.2", "0.05", "0.01")):
        user = f"runner-{index}"
        args = [
            "--threads",
            "2",
            "--seconds",
            "10",
            "--pause",
            pause,
            "--tag",
            "app=runaway",
            "--tag",
            f"user={user}",
        ]
        runs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.support.admission_load",
                    bootstrap,
                    str(tmp / f"o{index}-{i}"),
                    *args,
                ],
                stdout=subprocess.PIPE,
            )
            for i in range(2)
        ]
        for run in runs:
            run.communicate(timeout=120)
        rows_ = worker.query(
            "SELECT toUnixTimestamp64Milli(event_time), cost_total FROM ledger FINAL "
            f"WHERE user = '{user}' ORDER BY event_time"
        ).rows
        spent = sum((Decimal(str(r[1])) for r in rows_), Decimal(0))
        span = (int(rows_[-1][0]) - int(rows_[0][0])) / 1000 if len(rows_) > 1 else 0
        total, crossing = Decimal(0), 0.0
        for millis, cost in rows_:
            total += Decimal(str(cost))
            if total >= Decimal("0.10"):
                crossing = (int(millis) - int(rows_[0][0])) / 1000
                break
        rate = Decimal("0.10") / Decimal(str(max(crossing, 0.001)))
        rows.append(
            {
                "pause_s": float(pause),
                "rate_usd_per_s": round(float(rate), 4),
                "spent_usd": str(spent),
                "overshoot_usd": str(spent - Decimal("0.10")),
                "overshoot_s_of_spend": round(float((spent - Decimal("0.10")) / rate), 2),
                "events_span_s": span,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--in-process-only", action="store_true", help="stages 1 and 2 only")
    parser.add_argument("--lag-bursts", default="0,50000,150000", help="stage 5 ('' skips it)")
    args = parser.parse_args()
    results: dict[str, Any] = {"stage": "quotas", "machine": machine_facts()}
    with tempfile.TemporaryDirectory() as tmp_name, TansuBroker() as broker:
        tmp = Path(tmp_name)
        bootstrap = broker.bootstrap_servers
        results["admit_in_process"] = bench_admit(bootstrap, tmp)
        print(results["admit_in_process"], flush=True)
        results["admit_http"] = bench_http()
        print(results["admit_http"], flush=True)
        if args.in_process_only:
            print(write_results(results))
            return
        config = write_worker_config(
            tmp / "w.toml", bootstrap, f"chdb://{tmp / 'ch'}", USAGE, QUOTA_CONFIG + LAG_QUOTA
        )
        worker = WorkerProcess(config, tmp / "worker.log").start()
        try:
            results["reaction"] = bench_reaction(bootstrap, tmp, worker, args.trials)
            print(results["reaction"], flush=True)
            results["overshoot"] = bench_overshoot(bootstrap, tmp, worker)
            print(results["overshoot"], flush=True)
            if args.lag_bursts:
                bursts = [int(b) for b in args.lag_bursts.split(",")]
                results["overshoot_under_lag"] = bench_lag(bootstrap, tmp, worker, bursts)
        finally:
            worker.stop()
        if args.lag_bursts:
            results["batch_within"] = bench_batch_within(tmp)
            print(results["batch_within"], flush=True)
    print(write_results(results))


if __name__ == "__main__":
    main()
