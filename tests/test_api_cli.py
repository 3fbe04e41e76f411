"""The CLI through a running worker's API (tokens from the environment or the admin token file),
UTC everywhere whatever the host's zone, and the worker's one listening port."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from spendstream.cli.root import app
from spendstream.embedded import TansuBroker
from spendstream.events import UsageEvent
from tests.support.traffic import publish
from tests.support.worker import WorkerProcess, wait_until

pytestmark = pytest.mark.integration


def cli(
    config: Path, *args: str, tz: str = "UTC", token: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TZ": tz, "COLUMNS": "300"}
    env.pop("SPENDSTREAM_TOKEN", None)
    if token is not None:
        env["SPENDSTREAM_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "spendstream", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def json_rows(result: subprocess.CompletedProcess[str]) -> list[dict[str, str]]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def listening_ports(pid: int) -> set[int]:
    """TCP ports process ``pid`` listens on (its socket inodes matched in /proc/net/tcp*)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.mark.heavy
def test_reports_are_utc_on_a_new_york_host_through_the_worker_and_directly(
    broker: TansuBroker, start_worker: Callable[..., WorkerProcess], worker_config: Path
) -> None:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    events = [
        UsageEvent(
            event_id=f"tz-{i}",
            event_time=hour + timedelta(minutes=minutes),
            provider="openai",
            model="gpt-4o",
            input_tokens=1000,
            tags={"team": team, "app": "tz"},
        )
        for i, (minutes, team) in enumerate(((10, "inside"), (50, "inside"), (70, "after")))
    ]
    worker = start_worker()
    publish(broker.bootstrap_servers, [e.to_json_bytes() for e in events])
    worker.wait_for_ledger_count(len(events))
    assert listening_ports(worker.process.pid) == {worker.port}  # type: ignore[union-attr]
    window = ["--since", hour.isoformat(), "--until", (hour + timedelta(hours=1)).isoformat()]
    runs = {}
    for tz in ("UTC", "America/New_York"):
        report = json_rows(
            cli(worker_config, "report", "--by", "team", *window, "-f", "json", tz=tz)
        )
        audit = json_rows(
            cli(worker_config, "audit", "run", "cost_per_request", *window, "-f", "json", tz=tz)
        )
        runs[tz] = (report, audit)
    assert runs["UTC"] == runs["America/New_York"]
    report, audit = runs["UTC"]
    assert [(r["team"], r["events"]) for r in report] == [("inside", 2)]
    assert [r["team"] for r in audit] == ["inside"]
    worker.stop()
    direct = json_rows(
        cli(worker_config, "report", "--by", "team", *window, "-f", "json", tz="America/New_York")
    )
    assert direct == report


def run(config: Path, *args: str, token: str | None = None) -> Result:
    """The CLI in this process (faster than a subprocess); ``token`` as SPENDSTREAM_TOKEN."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    env = {"SPENDSTREAM_TOKEN": token} if token else {"SPENDSTREAM_TOKEN": ""}
    try:
        return CliRunner().invoke(app, [*args, "-c", str(config)], env=env)
    finally:
        root.handlers[:], root.level = handlers, level


def out_rows(result: Result) -> list[dict[str, str]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_tokens_and_scoped_reads_through_the_cli(
    broker: TansuBroker, start_worker: Callable[..., WorkerProcess], worker_config: Path
) -> None:
    events = [
        UsageEvent(
            provider="openai",
            model="gpt-4o",
            input_tokens=100 * (i + 1),
            tags={"team": "red" if i % 3 else "blue"},
        )
        for i in range(9)
    ]
    worker = start_worker()
    publish(broker.bootstrap_servers, [e.to_json_bytes() for e in events])
    worker.wait_for_ledger_count(len(events))
    create = ["tokens", "create", "--name", "red-ci", "--role", "viewer", "--team", "red"]
    created = run(worker_config, *create, "--expires", "30d")
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    assert secret.startswith("sst_") and "shown again" in created.stderr
    listed = run(worker_config, "tokens", "list", "-f", "json")
    assert secret not in listed.output
    assert {"red-ci", "local-admin"} <= {r["name"] for r in out_rows(listed)}
    red = out_rows(run(worker_config, "report", "--by", "team", "-f", "json", token=secret))
    expected = worker.query("SELECT sum(cost_total) FROM ledger FINAL WHERE team = 'red'")
    assert [(r["team"], Decimal(r["cost_usd"])) for r in red] == [
        ("red", Decimal(str(expected.rows[0][0])))
    ]
    refused = run(worker_config, "sql", "SELECT 1", token=secret)
    assert refused.exit_code == 1 and "lacks the admin permission" in refused.output
    escalate = ["tokens", "create", "--name", "x", "--role", "admin"]
    escalated = run(worker_config, *escalate, token=secret)
    assert escalated.exit_code == 1 and "403" in escalated.output
    revoked = run(worker_config, "tokens", "revoke", "red-ci")
    assert revoked.exit_code == 0 and "revoked red-ci" in revoked.stdout
    wait_until(
        lambda: run(worker_config, "report", token=secret).exit_code == 1,
        30,
        "the revoked token refused",
    )
    worker.stop()
    # Without a worker the same commands write ClickHouse directly (a subprocess: chDB).
    offline = cli(worker_config, "tokens", "list", "-f", "json")
    assert {r["name"]: r["state"] for r in json_rows(offline)}["red-ci"] == "revoked"


def test_admin_token_file_is_private_and_reused(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker()
    first = worker.admin_token
    assert worker.token_file.stat().st_mode & 0o777 == 0o600
    assert worker.stop() == 0  # SIGTERM: Faust and the API thread stop cleanly
    worker = start_worker(name="again")
    assert worker.admin_token == first
    assert worker.api().get("/tokens")
