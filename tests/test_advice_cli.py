"""``spendstream recommend`` and ``spendstream whatif`` as a user runs them (no worker: the CLI
reads and writes the chDB directory itself), against the same figures computed in-process."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from spendstream.advice.service import Advisor
from spendstream.advice.whatif import WhatIfRequest, simulate
from spendstream.config import InsightsSettings
from spendstream.money import format_usd
from spendstream.pricing import default_pricer
from spendstream.sinks.access import ClientReader, jsonable
from spendstream.sinks.client import connect
from tests.support.cli import spendstream, spendstream_here
from tests.support.insight_data import END, START, generate
from tests.support.ledger_data import fill_ledger, write_config
from tests.support.ledger_template import copy_template

pytestmark = pytest.mark.integration
DAYS = (datetime.now(UTC) - START).days + 2  # the planted weeks, read from today
SETTINGS = '[insights]\nbatch_features = ["nightly"]\n'


@pytest.fixture(scope="module")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory, migrated_template: Path) -> Path:
    path = copy_template(migrated_template, tmp_path_factory.mktemp("advice_cli") / "clickhouse")
    client = connect(f"chdb://{path}", "spendstream")
    fill_ledger(client, generate())
    client.close()
    return path


@pytest.mark.heavy
def test_recommend_lists_dismisses_and_logs(chdb_dir: Path, tmp_path: Path) -> None:
    config = str(write_config(tmp_path, chdb_dir, SETTINGS))
    listed = spendstream("recommend", "--days", str(DAYS), "-c", config, "-f", "json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    client = connect(f"chdb://{chdb_dir}", "spendstream")
    try:
        advisor = Advisor(
            ClientReader(client), default_pricer(), InsightsSettings(batch_features=["nightly"])
        )
        expected = advisor.recommendations(datetime.now(UTC), DAYS)
    finally:
        client.close()
    assert [(r["rec_id"], r["monthly_usd"]) for r in rows] == [
        (r.rec_id, jsonable(r.monthly_usd)) for r in expected
    ]
    table = spendstream_here("recommend", "--days", str(DAYS), "-c", config, cwd=tmp_path)
    assert table.returncode == 0 and "rightsize" in table.stdout and "/month" not in table.stderr
    # The answer comes first: what the open ones are worth together, and the largest.
    total = sum((r.monthly_usd for r in expected), start=Decimal(0))
    assert table.stdout.splitlines()[0] == (
        f"{len(expected)} open recommendations worth {format_usd(total)} a month together; "
        f"the largest, {format_usd(expected[0].monthly_usd)} a month: {expected[0].action}"
    )
    top = rows[0]["rec_id"]
    done = spendstream_here(
        "recommend",
        "dismiss",
        top,
        "--reason",
        "not for us",
        "--days",
        str(DAYS),
        "-c",
        config,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert f"{top}: dismissed by {getpass.getuser()}" in done.stdout
    again = spendstream_here(
        "recommend", "--days", str(DAYS), "-c", config, "-f", "json", cwd=tmp_path
    )
    assert top not in again.stdout and len(again.stdout.splitlines()) == len(rows) - 1
    log = spendstream_here(
        "recommend", "log", "--since", "1d", "-c", config, "-f", "json", cwd=tmp_path
    )
    (entry,) = [json.loads(line) for line in log.stdout.splitlines()]
    assert (entry["rec_id"], entry["state"], entry["reason"]) == (top, "dismissed", "not for us")
    missing = spendstream_here("recommend", "accept", "0" * 16, "-c", config, cwd=tmp_path)
    assert missing.returncode == 2 and "no recommendation" in missing.stderr


def test_whatif_json_equals_the_simulation(chdb_dir: Path, tmp_path: Path) -> None:
    config = str(write_config(tmp_path, chdb_dir, SETTINGS))
    body = {
        "since": START.isoformat(),
        "until": END.isoformat(),
        "by": "feature",
        "changes": [{"action": "model", "scope": {"model": "gpt-4o"}, "to_model": "gpt-4o-mini"}],
    }
    (tmp_path / "change.json").write_text(json.dumps(body))
    done = spendstream_here("whatif", "change.json", "-c", config, "-f", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    client = connect(f"chdb://{chdb_dir}", "spendstream")
    try:
        expected = simulate(
            ClientReader(client), default_pricer(), WhatIfRequest.model_validate(body)
        )
    finally:
        client.close()
    assert json.loads(done.stdout) == jsonable(expected)
    assert Decimal(json.loads(done.stdout)["change_usd"]) < 0
    table = spendstream_here("whatif", "change.json", "-c", config, cwd=tmp_path)
    assert table.returncode == 0 and "total: $" in table.stdout
    (tmp_path / "bad.json").write_text('{"since": "x"}')
    bad = spendstream_here("whatif", "bad.json", "-c", config, cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
