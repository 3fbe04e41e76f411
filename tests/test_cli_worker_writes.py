"""The CLI while a worker owns the chDB directory, and with a closed stdout: `customers
import-revenue` stores through the worker's API (it opened chDB itself and died with an internal
error), and a command whose stdout reader left (`| head`) ends quietly, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client
from fastapi import APIRouter

from spendstream.api.routes_agents import agents_router
from spendstream.auth.roles import Principal, Role
from spendstream.cli import BROKEN_PIPE_EXIT
from spendstream.pricing import default_pricer
from spendstream.sinks.access import ClientReader, state_file
from spendstream.sinks.client import connect
from spendstream.sinks.ledger import LedgerEntry, LedgerWriter
from spendstream.sinks.revenue import Revenue, store_revenue
from tests.support import ledger_data
from tests.support.agent_data import agent_runs
from tests.support.cli import spendstream_here
from tests.support.http_app import ServedApp, TokenAuthenticator
from tests.support.ledger_template import copy_template

pytestmark = pytest.mark.integration
TOKENS = {"root": Principal("root", Role.ADMIN), "view": Principal("dash", Role.VIEWER)}


@pytest.fixture
def worker_dir(
    tmp_path: Path, chdb_path: Path, ledger_client: Client
) -> Iterator[tuple[Path, list[int]]]:
    """``ledger_client``'s directory owned by a live "worker" (this process, serving the real
    agents routes over it), announced as ``spendstream worker`` announces itself."""
    stored: list[int] = []

    def store(rows: list[Revenue]) -> int:
        stored.append(store_revenue(ledger_client, rows))
        return stored[-1]

    router = APIRouter(prefix="/api/v1")  # where the worker's API serves it
    router.include_router(agents_router(ClientReader(ledger_client), store))
    with ServedApp(TokenAuthenticator(TOKENS), router) as served:
        state_file(chdb_path).write_text(json.dumps({"pid": os.getpid(), "url": served.url}))
        yield chdb_path, stored


def test_import_revenue_goes_through_a_running_worker(
    worker_dir: tuple[Path, list[int]], ledger_client: Client
) -> None:
    directory, stored = worker_dir
    path = directory.parent
    revenue = path / "revenue.csv"
    revenue.write_text("customer,period_start,period_end,amount\nacme,2026-10-01,2026-10-08,7.5\n")
    for token, code in (("view", 1), ("root", 0)):
        config = path / f"{token}.toml"
        config.write_text(f'[clickhouse]\ndsn = "chdb://{directory}"\n[api]\ntoken = "{token}"\n')
        done = spendstream_here(
            "customers", "import-revenue", str(revenue), "-c", str(config), cwd=path
        )
        assert done.returncode == code, done.stdout + done.stderr
    assert (
        "worker refused"
        in spendstream_here(
            "customers", "import-revenue", str(revenue), "-c", str(path / "view.toml"), cwd=path
        ).stderr
    )
    assert stored == [1]
    rows = ledger_client.query("SELECT customer, amount FROM customer_revenue FINAL").result_rows
    assert [(c, str(a).rstrip("0")) for c, a in rows] == [("acme", "7.5")]


def test_a_closed_stdout_ends_a_command_quietly(tmp_path: Path, migrated_template: Path) -> None:
    path = copy_template(migrated_template, tmp_path / "clickhouse")
    client = connect(f"chdb://{path}", "spendstream")
    pricer = default_pricer()
    LedgerWriter(client, 1).write([LedgerEntry(e, pricer.rate(e)) for e in agent_runs(40)])
    client.close()
    config = str(ledger_data.write_config(tmp_path, path))
    window = ("--since", "2026-09-30", "--until", "2026-10-10")
    for command in (["customers", "spend", *window], ["report", "--by", "user", *window]):
        read, write = os.pipe()
        os.close(read)  # the reader left before the first line: every write is EPIPE
        try:
            done = subprocess.run(
                [sys.executable, "-m", "spendstream", *command, "-c", config, "-f", "csv"],
                stdout=write,
                stderr=subprocess.PIPE,
                text=True,
                cwd=tmp_path,
                timeout=120,
            )
        finally:
            os.close(write)
        assert done.stderr == "" and done.returncode == BROKEN_PIPE_EXIT, (command, done.stderr)
