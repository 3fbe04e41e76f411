"""``bench.scale queries`` end to end on a tiny generated ledger, prepared once and reused.

Only the shape and the exactness check are asserted, never a speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from spendstream.sinks.audits import AUDITS

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def run_queries(tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / "results"
    command = [sys.executable, "-m", "bench.scale", "queries", "--rows", "20000", "--runs", "2"]
    # Rollups are rebuilt a day at a time (~0.45 s a day whatever the rows): 2 days, not 30.
    command += ["--span-days", "2"]
    command += ["--data", str(tmp_path / "data"), "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result: dict[str, Any] = json.loads((out / "latest.json").read_text())["stages"]["queries"]
    return result


def test_queries_prepare_once_then_reuse_the_ledger(tmp_path: Path) -> None:
    first = run_queries(tmp_path)
    assert first["rows"] == 20000 and "reused" not in first
    assert len(set(first["totals_usd"].values())) == 1  # ledger = every day rollup
    assert set(first["query_ms"]) >= set(AUDITS) | {"budget_figures(4 budgets)"}
    assert all(len(runs) == 2 for runs in first["query_ms_runs"].values())
    assert first["disk"]["tables"]["ledger"]["rows"] == 20000

    second = run_queries(tmp_path)
    assert second["reused"] and second["end"] == first["end"]
    assert second["totals_usd"] == first["totals_usd"]
