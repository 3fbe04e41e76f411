"""The benchmark harness runs end to end with tiny sizes and writes well-formed results.

Only the shape and the exactness checks of the results are asserted, never a speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.run import STAGES
from spendstream.sinks.audits import AUDITS

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def positive_median(figure: dict[str, Any]) -> bool:
    return isinstance(figure["median"], float | int) and figure["median"] > 0 and figure["runs"]


def check_raw(stages: dict[str, Any]) -> None:
    assert positive_median(stages["raw"]["getmany_per_s"])
    assert positive_median(stages["raw"]["async_for_per_s"])


def check_pipeline(stages: dict[str, Any]) -> None:
    pipeline = stages["pipeline"]
    assert positive_median(pipeline["worker_per_s"]) and positive_median(
        pipeline["bare_faust_per_s"]
    )
    assert pipeline["exact"] is True, pipeline  # each event once in the ledger; rollups agree


def check_packed(stages: dict[str, Any]) -> None:
    packed = stages["packed"]
    assert positive_median(packed["worker_per_s"]) and packed["exact"] is True, packed


def check_sdk(stages: dict[str, Any]) -> None:
    assert stages["sdk"]["paced.ratio"]["median"] > 0


def check_alerts(stages: dict[str, Any]) -> None:
    alerts = stages["alerts"]
    assert len(alerts["latencies_ms"]) == alerts["trials"] == 3
    assert 0 < alerts["p50_ms"] <= alerts["p99_ms"]


def check_sink(stages: dict[str, Any]) -> None:
    sink = stages["sink"]
    assert sink["exact"] is True and positive_median(sink["writer_events_per_s"])
    assert all(positive_median(sink[f"split_us.{part}"]) for part in ("insert", "rollups"))


def check_reports(stages: dict[str, Any]) -> None:
    reports = stages["reports"]
    assert reports["rows"] == 20_000
    assert set(AUDITS) <= set(reports["query_ms"])
    assert all(positive_median(figure) for figure in reports["query_ms"].values())


def check_api(stages: dict[str, Any]) -> None:
    api = stages["api"]
    assert api["rows"] == 20_000 and api["spend.auth_overhead"] > 0
    assert all(api[f"spend[{label}].p95_ms"] > 0 for label in ("team", "team,model"))


def check_dashboard(stages: dict[str, Any]) -> None:
    dashboard = stages["dashboard"]
    assert dashboard["rows"] == 20_000
    assert 0 < dashboard["overview.p50_ms"] <= dashboard["overview.p95_ms"]
    assert 0 < dashboard["overview.page_bytes"] < 500_000


def check_cli(stages: dict[str, Any]) -> None:
    cli = stages["cli"]
    assert cli["python -c pass"]["median_ms"] > 0
    commands = ["--help", "report --help", "sql --help"]
    for where in ("chdb:// directly", "through the API"):
        commands += [f"report ({where})", f"sql SELECT 1 ({where})"]
    for command in commands:
        assert 0 < cli[command]["now"]["median_ms"] <= cli[command]["now"]["max_ms"], cli
    imports = cli["--help"]["slowest_imports_ms"]  # -X importtime, parsed (one command)
    assert any(name.startswith("spendstream") for name in imports), cli
    assert all(ms > 0 for ms in imports.values()), cli


def check_anomalies(stages: dict[str, Any]) -> None:
    found = stages["anomalies"]["defaults"]
    assert set(found) == {"volume_burst", "cache_stops"}  # quick: one kind per signal
    assert all(0 <= kind["recall"] <= 1 for kind in found.values())


CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "raw": check_raw,
    "pipeline": check_pipeline,
    "packed": check_packed,
    "sdk": check_sdk,
    "alerts": check_alerts,
    "sink": check_sink,
    "reports": check_reports,
    "api": check_api,
    "dashboard": check_dashboard,
    "anomalies": check_anomalies,
    "cli": check_cli,
}
# Stages run in groups, one bench process each, so xdist spreads them over its workers; each
# group is ~40-60 s (a process more costs its start, a broker and the produced events).
GROUPS = [("raw", "pipeline", "packed"), ("sdk", "alerts", "sink", "reports")]
GROUPS += [("api", "dashboard"), ("anomalies", "cli")]


def test_every_stage_is_smoke_tested() -> None:
    assert sorted(CHECKS) == sorted(STAGES)
    assert sorted(name for group in GROUPS for name in group) == sorted(STAGES)


@pytest.mark.heavy
@pytest.mark.parametrize("group", GROUPS, ids=["+".join(group) for group in GROUPS])
def test_quick_bench_writes_well_formed_results(tmp_path: Path, group: tuple[str, ...]) -> None:
    out = tmp_path / "results"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--stages",
            ",".join(group),
            "--out",
            str(out),
            "--work-dir",
            str(tmp_path / "work"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    written = sorted(out.glob("bench-*.json"))
    assert len(written) == 1 and (out / "latest.json").exists()
    results = json.loads(written[0].read_text())

    assert results["machine"]["nproc"] >= 1 and results["machine"]["python"]
    stages = results["stages"]
    assert set(stages) == set(group)
    for name in group:
        CHECKS[name](stages)

    summary = results["summary"]
    for name, target in summary["targets"].items():
        assert isinstance(target["met"], bool), name
        assert target["measured"] == summary[name]
    if "raw" in group:
        assert summary["pipeline_vs_raw_getmany"] > 0
