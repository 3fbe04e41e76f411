"""A runaway behind another team's burst: the lagging-ledger quota test and benchmark share it.

- :func:`same_partition_team`: a team whose events land on a given team's partition (the SDK
  keys events by team), so calls of that team queue behind the burst;
- :func:`publish_burst`: single-event messages (the worker's slowest input) for that team;
- :func:`start_runaway` / :func:`runaway_results`: ``tests.support.admission_load`` processes
  admitting, then recording, :data:`NICKEL_CALL` calls.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from kafka.partitioner.default import murmur2

from spendstream.events import UsageEvent
from spendstream.pricing import default_pricer

USAGE_TOPIC = "spendstream.usage.v1"
PARTITIONS = 4  # Tansu auto-creates topics with 4 partitions
# A $0.05 call at the shipped catalog's gpt-4o price ($0.04 input + $0.01 output).
NICKEL: dict[str, Any] = {"provider": "openai", "model": "gpt-4o"}
NICKEL |= {"input_tokens": 16000, "output_tokens": 1000}
NICKEL_CALL = ["--provider", "openai", "--model", "gpt-4o", "--input-tokens", "16000"]
NICKEL_CALL += ["--output-tokens", "1000"]


def user_quota(name: str, team: str, limit: Decimal) -> str:
    """A per-user USD quota per day for ``team`` (TOML)."""
    return f"""
[[quotas]]
name = "{name}"
scope = {{ team = "{team}" }}
group_by = ["user"]
limit = "{limit}"
per = "day"
"""


def nickel_cost() -> Decimal:
    return default_pricer().rate(UsageEvent.model_validate(NICKEL)).cost_total


def partition_of(team: str) -> int:
    return (murmur2(team.encode()) & 0x7FFFFFFF) % PARTITIONS


def same_partition_team(team: str) -> str:
    """Another team name whose events land on ``team``'s partition."""
    wanted = partition_of(team)
    return next(f"batch-{i}" for i in range(10_000) if partition_of(f"batch-{i}") == wanted)


def publish_burst(bootstrap: str, team: str, count: int, topic: str = USAGE_TOPIC) -> None:
    """``count`` small events of ``team``, one per Kafka message, acknowledged."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    for index in range(count):
        event = UsageEvent(
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=100,
            output_tokens=10,
            tags={"team": team, "user": f"u{index % 50}"},
        )
        producer.send(topic, event.to_json_bytes(), key=team.encode())
    producer.flush()
    producer.close()


def start_runaway(
    bootstrap: str, spool: Path, tags: dict[str, str], *args: str
) -> subprocess.Popen[str]:
    """An admission_load process making $0.05 calls with ``tags`` (stderr next to the spool)."""
    command = [sys.executable, "-m", "tests.support.admission_load", bootstrap, str(spool)]
    command += [*NICKEL_CALL, *args]
    for name, value in tags.items():
        command += ["--tag", f"{name}={value}"]
    log = spool.parent / f"{spool.name}.log"
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log.open("w"), text=True)


def runaway_results(processes: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    """Each process's result line (allowed, denied, first_denied, reason)."""
    out = []
    for process in processes:
        stdout, _ = process.communicate(timeout=300)
        if process.returncode != 0:
            raise RuntimeError(f"admission_load exited {process.returncode}")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out
