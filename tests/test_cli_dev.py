"""`spendstream dev --demo` end to end, then `sql` and `report` reading what it wrote."""

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

from tests.support.cli import spendstream

pytestmark = pytest.mark.integration


def test_dev_demo_shows_spend_stops_on_sigint_and_data_stays_readable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    dev = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spendstream",
            "dev",
            "--demo",
            "--rate",
            "200",
            "--data-dir",
            str(data),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        # While dev runs, the worker owns chDB: `sql` must go through it.
        deadline = time.monotonic() + 90
        spend, last = 0.0, ""
        while time.monotonic() < deadline and (spend <= 0 or not (data / "alerts.jsonl").exists()):
            time.sleep(1)
            result = spendstream(
                "sql", "SELECT sum(cost_total) FROM ledger FINAL", "--format", "csv", cwd=tmp_path
            )
            if result.returncode == 0:
                spend = float(result.stdout.splitlines()[-1] or 0)
            last = result.stdout + result.stderr
        assert spend > 0, f"no spend visible while dev --demo runs; last sql output: {last}"
    finally:
        dev.send_signal(signal.SIGINT)
        output, _ = dev.communicate(timeout=60)
    assert dev.returncode == 0, output
    assert "stopped. Data kept in" in output
    # The admin token the CLI used above: created on first start, private, explained.
    assert (data / "admin.token").stat().st_mode & 0o777 == 0o600
    assert "Authorization: Bearer $(cat" in output
    assert re.search(r"dashboard\s+http://127\.0\.0\.1:\d+/ +log in with the admin token", output)
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
    assert '"count()": ' in count.stdout
    assert int(count.stdout.split(":")[1].strip(" }\n")) > 0
