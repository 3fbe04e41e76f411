"""``spendstream runs …`` and ``spendstream customers …`` as a user runs them (the CLI reads the
chDB directory itself), against the same figures read in-process."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from spendstream.pricing import default_pricer
from spendstream.sinks.client import connect
from spendstream.sinks.ledger import LedgerEntry, LedgerWriter
from tests.support import ledger_data
from tests.support.agent_data import agent_runs
from tests.support.cli import spendstream, spendstream_here
from tests.support.ledger_data import write_config
from tests.support.ledger_template import copy_template

pytestmark = pytest.mark.integration


def lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


WINDOW = ("--since", "2026-09-30", "--until", "2026-10-10")


def test_runs_and_customers_commands(tmp_path: Path, migrated_template: Path) -> None:
    path = copy_template(migrated_template, tmp_path / "clickhouse")
    client = connect(f"chdb://{path}", "spendstream")
    pricer = default_pricer()
    events = list(agent_runs(120))
    LedgerWriter(client, 1).write([LedgerEntry(e, pricer.rate(e)) for e in events])
    client.close()
    config = str(write_config(tmp_path, path))
    total = sum(pricer.rate(e).cost_total for e in events)

    agents = spendstream("runs", "agents", *WINDOW, "-c", config, "-f", "json", cwd=tmp_path)
    assert agents.returncode == 0, agents.stderr
    rows = lines(agents.stdout)
    assert {row["agent"] for row in rows} == {"triage", "research", "coder"}
    top = spendstream_here(
        "runs", "top", *WINDOW, "--limit", "1", "-c", config, "-f", "json", cwd=tmp_path
    )
    [costliest] = lines(top.stdout)
    shown = spendstream_here("runs", "show", costliest["run_id"], "-c", config, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    missing = spendstream_here("runs", "show", "nope", "-c", config, cwd=tmp_path)
    assert missing.returncode == 2 and "no run 'nope'" in missing.stderr
    spend = spendstream_here(
        "customers", "spend", *WINDOW, "-c", config, "-f", "json", cwd=tmp_path
    )
    assert sum(Decimal(str(row["cost"])) for row in lines(spend.stdout)) == total
    assert "" in {row["customer"] for row in lines(spend.stdout)}  # the plain calls' row
    table = spendstream_here("customers", "spend", *WINDOW, "-c", config, cwd=tmp_path)
    assert "(none)" in table.stdout  # labelled as the dashboard labels it
    revenue = tmp_path / "revenue.csv"
    revenue.write_text("customer,period_start,period_end,amount\nacme,2026-10-01,2026-10-08,0.01\n")
    imported = spendstream_here(
        "customers", "import-revenue", str(revenue), "-c", config, cwd=tmp_path
    )
    assert imported.returncode == 0, imported.stderr
    margin = spendstream_here(
        "customers", "margin", *WINDOW, "-c", config, "-f", "json", cwd=tmp_path
    )
    [acme] = lines(margin.stdout)
    assert acme["customer"] == "acme" and acme["at_loss"] is True
    revenue.write_text("customer,period_start,period_end,amount\nacme,2026-10-01,2026-10-08,x\n")
    refused = spendstream_here(
        "customers", "import-revenue", str(revenue), "-c", config, cwd=tmp_path
    )
    assert refused.returncode == 2 and "line 2: amount" in refused.stderr


def test_report_says_when_its_rows_are_cut(tmp_path: Path, migrated_template: Path) -> None:
    path = copy_template(migrated_template, tmp_path / "clickhouse")
    client = connect(f"chdb://{path}", "spendstream")
    pricer = default_pricer()
    events = ledger_data.generate(200)  # four users, one of them none
    LedgerWriter(client, 1).write([LedgerEntry(e, pricer.rate(e)) for e in events])
    client.close()
    config = str(write_config(tmp_path, path))
    asked = ("report", "--by", "user", *WINDOW, "-c", config, "-f", "json")
    whole = spendstream_here(*asked, "--limit", "50", cwd=tmp_path)
    assert whole.returncode == 0 and "truncated" not in whole.stderr
    count = len(lines(whole.stdout))
    assert count >= 3
    cut = spendstream_here(*asked, "--limit", str(count - 1), cwd=tmp_path)
    assert len(lines(cut.stdout)) == count - 1 and "truncated:" in cut.stderr
    assert "narrow" in cut.stderr
    exact = spendstream_here(*asked, "--limit", str(count), cwd=tmp_path)
    assert lines(exact.stdout) == lines(whole.stdout) and "truncated" not in exact.stderr
