"""``python -m bench.explain_profile`` on a small generated ledger: every query of one Explain
read is found and timed, with each of its sources (shape only: speeds are never asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.explain_profile import branches, main

pytestmark = pytest.mark.integration


def test_branches_are_the_sources_of_the_union() -> None:
    sql = "SELECT a FROM (SELECT a FROM x UNION ALL SELECT a FROM y) GROUP BY a"
    assert branches(sql) == ["SELECT a FROM x", "SELECT a FROM y"]
    assert branches("SELECT 1") == []


def test_profile_of_one_case(tmp_path: Path) -> None:
    case = "all spend, 24 h vs a week before"
    # 9 days: the case's period and its baseline a week before (the rollups are rebuilt a day
    # at a time, ~0.45 CPU-s a day whatever the rows)
    argv = ["--data", str(tmp_path / "ledger"), "--rows", "20000", "--repeat", "1"]
    argv += ["--span-days", "9"]
    results = main([*argv, "--case", case, "--out", str(tmp_path / "out")])
    profile = results["stages"]["explain_profile"]["cases"][case]
    assert profile["queries"], "the read ran no query"
    sources = {branch["source"] for query in profile["queries"] for branch in query["branches"]}
    # 24 h cut mid-hour: the ledger edges and whole hours; no whole day, so no day rollup
    assert {"ledger", "rollup_hour"} <= sources
    assert not {"rollup_day", "rollup_day_drivers"} & sources
    for query in profile["queries"]:
        assert query["rows"] > 0 and query["cpu_min_ms"] >= 0
    assert profile["cells"][0] > 0  # the baseline, a week before, is inside the ledger
    assert profile["cells"][1] > 0 and profile["decomposition_and_report"]["wall_min_ms"] > 0
    assert (tmp_path / "out" / "latest.json").exists()
