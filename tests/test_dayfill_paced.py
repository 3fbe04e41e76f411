"""``bench.dayfill --pace``: the agent's batches as ``take()`` cuts them, and a tiny run's shape
(the statements split from chDB's own logs, rollups equal to the ledger). No speed asserted."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.dayfill_paced import take

ROOT = Path(__file__).resolve().parent.parent


def args(**given: float) -> argparse.Namespace:
    values = {"paced_batch": 2_000, "pack": 1, "within": 0.25, "pace": 10_000.0} | given
    return argparse.Namespace(**values)


def test_a_packed_stream_is_cut_by_time_and_a_late_writer_takes_what_arrived() -> None:
    # One event per message at 10 k/s: 2,000 messages arrive in 0.2 s, before the 0.25 s cut.
    now = time.perf_counter()
    count, behind, _waited = take(0, 100_000, now - 10, args())
    assert (count, behind) == (2_000, 98_000)  # 10 s late: a full batch, the rest behind
    count, behind, waited = take(0, 100_000, now - 0.3, args(pack=100))
    assert 3_000 <= count < 3_500 and behind == 0 and waited == 0  # late: what has arrived
    count, behind, waited = take(0, 100_000, time.perf_counter(), args(pack=100, within=0.05))
    assert 490 <= count <= 600 and behind <= 100 and 0.04 < waited < 0.06  # cut by time


@pytest.mark.integration
def test_a_tiny_paced_run_splits_clickhouse_cpu_and_ends_exact(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench.dayfill", "--pace", "20000", "--window-s", "0.5"]
    command += ["--checkpoints", "2000", "--refresh", "deferred-minutes", "--statements"]
    command += ["--pack", "100", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(next(tmp_path.glob("bench-*.json")).read_text())
    window = results["checkpoints"]["2000"]
    assert window["events"] == 10_000 and window["rollups_equal_ledger"]
    kinds = [row["kind"] for row in window["statements"]]
    assert any(kind.startswith("INSERT INTO `ledger`") for kind in kinds)
    assert window["logged_cpu_us"] > 0
