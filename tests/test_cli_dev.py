"""`make run`'s stack (`spendstream dev --demo`) end to end: the README tour as written, in
order, while it runs; every insight has figures from the demo; then Ctrl-C and the data stays
readable."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spendstream.cli.root import app
from spendstream.insights.registry import INSIGHTS
from tests.support.cli import spendstream
from tests.test_alerts_engine import run_cli

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent
TOUR = re.compile(r"<!-- tour -->\n```bash\n(.*?)```", re.S)


def tour_blocks() -> list[str]:
    return TOUR.findall((ROOT / "README.md").read_text())


def test_the_readme_has_a_tour() -> None:
    assert len(tour_blocks()) == 1
    assert ".venv/bin/spendstream send -" in tour_blocks()[0]


def in_process(*args: str) -> tuple[int, str]:
    """The same command in this process, from the current directory: the waits below poll
    with it (a ``python -m spendstream`` costs ~1.3 CPU-s of interpreter start and imports;
    the tour and the checks after it run the command line as a newcomer does)."""
    result = run_cli(app, *args)
    return result.exit_code, result.stdout


def insight_rows(name: str) -> int:
    code, out = in_process("insights", name, "--since", "30d", "--format", "csv")
    return len(out.splitlines()) - 1 if code == 0 else -1


@pytest.mark.heavy
def test_make_run_stack_runs_the_readme_tour_and_every_insight_has_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As a newcomer: a checkout with its .venv, `make run` in one terminal, the tour in another.
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    data = tmp_path / "data"
    dev = subprocess.Popen(
        [str(tmp_path / ".venv" / "bin" / "spendstream"), "dev", "--demo"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert dev.stdout is not None
    monkeypatch.chdir(tmp_path)  # where a newcomer types the commands (in_process)
    try:
        broker = ""
        for line in dev.stdout:  # the addresses come before the live view
            if found := re.search(r"export B=(\S+)\)", line):
                broker = found[1]
            if line.startswith("dashboard"):
                break
        assert broker, "dev printed no broker address"
        # A newcomer reads the README for a minute first: by then the runaway user is blocked.
        deadline = time.monotonic() + 180
        while "BLOCKED" not in in_process("quotas", "status", "--format", "csv")[1]:
            assert time.monotonic() < deadline, "the demo's runaway user was never blocked"
            time.sleep(2)
        tour = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", tour_blocks()[0]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, "B": broker, "COLUMNS": "200"},
            timeout=300,
        )
        assert tour.returncode == 0, f"the README tour failed:\n{tour.stdout}\n{tour.stderr}"
        assert "accepted 1, rejected 0" in tour.stdout, tour.stdout
        assert "user=user-runaway" in tour.stdout and "BLOCKED" in tour.stdout, tour.stdout
        assert "ticket-agent" in tour.stdout and "acme" in tour.stdout, tour.stdout  # runs
        # Every insight has figures once the demo's history is in (the worker writes it within
        # a minute or so of the start).
        deadline = time.monotonic() + 180
        empty = list(INSIGHTS)
        while empty and time.monotonic() < deadline:
            empty = [name for name in empty if insight_rows(name) <= 0]
            time.sleep(2)
        assert not empty, f"insights without figures after the demo's history: {empty}"
    finally:
        dev.send_signal(signal.SIGINT)
        output, _ = dev.communicate(timeout=90)
    assert dev.returncode == 0, output
    assert "stopped. Data kept in" in output
    # The admin token the CLI used above: created on first start, private, explained.
    assert (data / "admin.token").stat().st_mode & 0o777 == 0o600
    assert not list(data.glob("*.worker.json")), "worker state file left behind"
    # Demo budgets alert into the local inbox (the all-spend budget's forecast fires at once).
    alerts = (data / "alerts.jsonl").read_text().splitlines()
    assert any("all-monthly" in json.loads(line)["title"] for line in alerts), alerts

    report = spendstream("report", "--by", "team", "--since", "1d", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    for team in ("search", "support", "growth", "platform"):
        assert team in report.stdout
    count = spendstream(
        "sql", "SELECT count() FROM ledger FINAL WHERE priced", "--format", "json", cwd=tmp_path
    )
    assert count.returncode == 0, count.stderr
    assert int(count.stdout.split(":")[1].strip(" }\n")) > 0
