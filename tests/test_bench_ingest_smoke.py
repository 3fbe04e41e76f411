"""The ingest benchmark runs end to end with tiny sizes and writes well-formed results
(shape only: speed is never asserted in tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def test_quick_ingest_bench_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "ingest.json"
    command = [sys.executable, "-m", "bench.bench_ingest", "--events", "1000", "--runs", "1"]
    done = subprocess.run(
        [*command, "--spans", "50", "--threads", "2", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    results = json.loads(out.read_text())
    http, otlp = results["http_ingest"], results["otlp_conversion"]
    for figure in ("http_events_per_s", "sdk_events_per_s", "raw_producer_events_per_s"):
        assert http[figure]["median"] > 0 and len(http[figure]["runs"]) == 1
    assert http["http_vs_sdk"] > 0 and http["http_vs_raw"] > 0
    for figure in ("proto_convert_us_per_span", "json_convert_us_per_span"):
        assert otlp[figure]["median"] > 0
