"""Stage 2, the pipeline: the real ``spendstream worker`` subprocess (validation, pricing,
ledger, rollups and two budgets on) drains N pre-produced events; and the bare Faust agent
(``bench.faust_bare``) drains the same topic as a second reference.

Each run gets a fresh consumer group (app id) and a fresh chDB directory. The worker's rate is
steady-state: ``(N - rows at first sight) / (done - first ledger row seen)``, polling its /sql
page every 50 ms; ``join_s`` (worker healthy until the first ledger row: consumer-group join,
first fetch and first batch) is reported apart.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import steady_rate
from bench.profile import hot_frames, start_recording
from tests.support.worker import WorkerProcess

POLL_S = 0.05
BUDGETS = """
[[budgets]]
name = "bench-search"
scope = { team = "search" }
limit = "1000000000"
thresholds = [50, 80, 100]
forecast = true

[[budgets]]
name = "bench-prod"
scope = { env = "prod" }
period = "day"
limit = "1000000000"
thresholds = [100]
forecast = false
"""


def write_worker_config(
    path: Path, bootstrap: str, dsn: str, topic: str, extra: str = "", worker: str = ""
) -> Path:
    """A worker config on ``topic`` with a unique app id (so a fresh consumer group)."""
    path.write_text(
        f"""
[kafka]
bootstrap_servers = "{bootstrap}"
usage_topic = "{topic}"
dead_letter_topic = "{topic}.dlq"

[clickhouse]
dsn = "{dsn}"

[worker]
app_id = "bench-{uuid.uuid4().hex[:8]}"
{worker}

[log]
level = "warning"
format = "json"
{extra}
"""
    )
    return path


def run_worker_once(
    bootstrap: str,
    topic: str,
    count: int,
    work_dir: Path,
    profile: bool = False,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Start a worker on the pre-produced ``topic`` and time it until ``count`` events are in
    the ledger and the day rollup; stops the worker before returning. With ``profile``,
    py-spy samples the worker throughout (``work_dir/worker.pyspy.txt``); ``batch_size``
    overrides the worker's default batch size."""
    work_dir.mkdir(parents=True, exist_ok=True)
    config = write_worker_config(
        work_dir / "spendstream.toml",
        bootstrap,
        f"chdb://{work_dir / 'clickhouse'}",
        topic,
        extra=BUDGETS,
        worker=f"batch_size = {batch_size}" if batch_size else "",
    )
    worker = WorkerProcess(config, work_dir / "worker.log")
    launched = time.perf_counter()
    worker.start()
    healthy = time.perf_counter()
    assert worker.process is not None
    spy = start_recording(worker.process.pid, work_dir / "worker.pyspy.txt") if profile else None
    try:
        first_at, first_rows = 0.0, 0
        while True:
            rows = int(worker.scalar("SELECT count() FROM ledger"))
            now = time.perf_counter()
            if rows and not first_at:
                first_at, first_rows = now, rows
            if rows >= count:  # the day rollup is refreshed last (minute, hour, day)
                rolled = worker.scalar("SELECT sum(events) FROM rollup_day FINAL")
                if int(rolled) >= count:
                    done_at = time.perf_counter()
                    break
            time.sleep(POLL_S)
        exact = worker.query(
            "SELECT (SELECT count() FROM ledger FINAL), (SELECT sum(events) FROM rollup_day FINAL),"
            " (SELECT sum(cost_total) FROM ledger FINAL) = (SELECT sum(cost_total) FROM "
            "rollup_day FINAL)"
        ).rows[0]
    finally:
        worker.stop()
    result: dict[str, Any] = {
        "rate": steady_rate(count, (first_at, first_rows), done_at, healthy),
        "start_s": healthy - launched,
        "join_s": first_at - healthy,
        "drain_s": done_at - first_at,
        "first_rows": first_rows,
        "ledger_final_count": int(exact[0]),
        "rollup_day_events": int(exact[1]),
        "rollups_match_ledger_cost": bool(exact[2]),
    }
    if spy is not None:
        spy.wait(60)
        result["profile"] = hot_frames(work_dir / "worker.pyspy.txt")
    return result


def run_bare_faust_once(bootstrap: str, topic: str, count: int, work_dir: Path) -> dict[str, Any]:
    """The bare Faust agent on ``topic``; returns its steady rate and timings."""
    work_dir.mkdir(parents=True, exist_ok=True)
    out = work_dir / "faust-bare.json"
    out.unlink(missing_ok=True)
    with (work_dir / "faust-bare.log").open("ab") as log:
        launched = time.time()
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.faust_bare", bootstrap, topic, str(count), str(out)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60 + count / 2_000
        while not out.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bare Faust agent failed; see {work_dir / 'faust-bare.log'}")
            time.sleep(POLL_S)
        result: dict[str, Any] = json.loads(out.read_text())
    finally:
        process.terminate()
        process.wait(30)
    result["start_and_join_s"] = result["first_at"] - launched
    return result
