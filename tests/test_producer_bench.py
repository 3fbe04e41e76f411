"""Smoke test of bench/bench_sdk.py with a tiny N (speed is never asserted in tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from spendstream.embedded import TansuBroker

ROOT = Path(__file__).parent.parent


@pytest.mark.integration
def test_bench_sdk_runs_and_reports_both_contenders(broker: TansuBroker) -> None:
    command = ["bench/bench_sdk.py", "--n", "300", "--gap-us", "10"]
    result = subprocess.run(
        [sys.executable, *command, "--bootstrap", broker.bootstrap_servers],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for mode in ("burst", "paced"):
        for name in ("bare_send", "record"):
            assert report[f"{mode}.{name}"]["mean_us"] > 0
        assert report[f"{mode}.ratio"] > 0
    stats = report["recorder_stats"]
    assert stats["recorded"] == stats["sent"] > 0  # every recorded event was delivered
    assert stats["dropped"] == {}
