"""``python -m bench.explain --quick`` runs end to end and writes well-formed results (shape
only: speeds are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def test_quick_explain_bench(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.explain", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    stages = json.loads((tmp_path / "latest.json").read_text())["stages"]
    assert stages["explain"]["rows"] == 20_000 and stages["explain"]["span_days"] == 15
    for case in stages["explain"]["cases"].values():
        assert case["cells_per_period"] > 0 and case["p95_ms"] >= case["p50_ms"] > 0
        # --quick's shorter ledger (15 days) still holds every case's baseline
        assert case["cells_baseline"] > 0
        assert " vs " in case["sentence"]
    assert {"with drivers rollups", "without drivers rollups"} <= set(stages["refresh"])
