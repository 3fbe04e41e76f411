"""A command run where no ledger is (the wrong directory, a wrong DSN) exits 2 naming where it
looked and how to point it at the ledger, and creates nothing there; only the worker, ``dev`` and
``migrate`` create a ledger (spendstream.cli.root.CREATES_LEDGER)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from spendstream.cli.errors import EXIT_USAGE
from spendstream.cli.root import app
from spendstream.sinks.client import connect

CONFIG = """\
[[budgets]]
name = "hostile"
scope = { team = "search" }
limit = "100"

[[quotas]]
name = "q-user"
scope = { team = "support" }
group_by = ["user"]
limit = "20"
per = "day"
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "300"})


@pytest.mark.parametrize(
    "args",
    [
        ["alerts", "silence", "hostile", "--for", "1h"],
        ["quotas", "override", "q-user", "user=racer1", "--limit", "20", "--for", "2h"],
        ["alerts", "list"],
        ["report"],
        ["tokens", "list"],
    ],
)
def test_a_command_where_no_ledger_is_exits_2_and_creates_none(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "spendstream.toml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPENDSTREAM_CLICKHOUSE__DSN", raising=False)
    done = run(*args)
    assert done.exit_code == EXIT_USAGE, done.output
    said = " ".join(done.output.split())
    assert f"no ledger in {tmp_path / 'data' / 'clickhouse'}" in said
    assert "SPENDSTREAM_CLICKHOUSE__DSN" in said
    assert not (tmp_path / "data").exists()


def test_an_empty_directory_is_no_ledger_and_migrate_creates_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPENDSTREAM_CLICKHOUSE__DSN", raising=False)
    (tmp_path / "data" / "clickhouse").mkdir(parents=True)  # left by an older CLI
    refused = run("alerts", "list")
    assert refused.exit_code == EXIT_USAGE, refused.output
    assert "database 'spendstream'" in refused.output
    assert run("migrate").exit_code == 0
    listed = run("alerts", "list", "-f", "json")
    assert listed.exit_code == 0, listed.output
    # after the commands, this process creates ledgers again (the worker's and tests' connect)
    fresh = tmp_path / "fresh"
    connect(f"chdb://{fresh}", "spendstream").close()
    assert fresh.is_dir()
