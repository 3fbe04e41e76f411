"""Bad input to the CLI on real chDB: a usage error (exit 2) that names what to change, never a
traceback (exit 4) or a silent success (exit 0); and the empty answers that are not errors."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from spendstream.cli.errors import EXIT_OK, EXIT_USAGE
from tests.support.cli import spendstream_here
from tests.support.ledger_data import write_config
from tests.support.ledger_template import copy_template

pytestmark = pytest.mark.integration

REVENUE = "customer,period_start,period_end,amount\nacme,2026-12-01,2027-01-01,100.50\n"


@pytest.fixture
def config(tmp_path: Path, migrated_template: Path) -> str:
    return str(write_config(tmp_path, copy_template(migrated_template, tmp_path / "clickhouse")))


def test_an_empty_window_is_an_empty_answer_and_a_reversed_one_a_usage_error(
    tmp_path: Path, config: str
) -> None:
    empty = ("--since", "2020-01-01", "--until", "2020-02-01")
    for output in ("table", "json"):
        spend = spendstream_here(
            "customers", "spend", *empty, "-f", output, "-c", config, cwd=tmp_path
        )
        assert spend.returncode == EXIT_OK, spend.stderr  # was: internal error (exit 4)
        assert "internal error" not in spend.stderr
    reversed_window = ("--since", "2026-12-05", "--until", "2026-12-01")
    for command in (("runs", "top"), ("customers", "spend"), ("runs", "sessions")):
        done = spendstream_here(*command, *reversed_window, "-c", config, cwd=tmp_path)
        assert done.returncode == EXIT_USAGE, (command, done.stdout, done.stderr)  # was: 0
        assert "--since/--until: since (2026-12-05T00:00:00+00:00) must come before" in done.stderr


def test_export_to_a_missing_directory_names_it(tmp_path: Path, config: str) -> None:
    out = tmp_path / "no-such-dir" / "x.csv"
    done = spendstream_here(
        "export", "focus", "--month", "2026-10", "--out", str(out), "-c", config, cwd=tmp_path
    )
    assert done.returncode == EXIT_USAGE, done.stderr  # was: FileNotFoundError traceback, 4
    assert f"--out {out}: no directory {out.parent}: create it" in done.stderr
    taken = spendstream_here(
        "export", "focus", "--month", "2026-10", "--out", str(tmp_path), "-c", config, cwd=tmp_path
    )
    assert taken.returncode == EXIT_USAGE, taken.stderr  # was: IsADirectoryError, exit 4
    assert f"--out {tmp_path}: cannot write: Is a directory" in taken.stderr


def test_focus_bills_without_billed_cost_or_header_are_refused(tmp_path: Path, config: str) -> None:
    no_cost = tmp_path / "no-cost.csv"
    no_cost.write_text(
        "BillingCurrency,ChargePeriodStart,ConsumedQuantity,ConsumedUnit,x_Model\n"
        "USD,2026-12-08T00:00:00Z,60,Tokens,anthropic.claude-3-5-haiku-20241022-v1:0\n"
    )
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    for path, said in ((no_cost, "no BilledCost column"), (empty, "empty: a FOCUS bill")):
        done = spendstream_here(
            "reconcile", "import", "--provider", "bedrock", str(path), "-c", config, cwd=tmp_path
        )
        assert done.returncode == EXIT_USAGE, done.stdout  # was: "line(s) written", exit 0
        assert f"{path}: {said}" in done.stderr
    status = spendstream_here("reconcile", "status", "-f", "json", "-c", config, cwd=tmp_path)
    assert status.returncode == EXIT_OK and status.stdout.strip() == "", status.stdout


def test_revenue_csv_with_a_byte_order_mark_and_errors_by_file_line(
    tmp_path: Path, config: str
) -> None:
    """Excel's "CSV UTF-8" starts with a BOM (was: "CSV header lacks customer"); an error names
    the line of the file, the header being line 1 (was: one less)."""
    path = tmp_path / "revenue.csv"
    path.write_bytes(b"\xef\xbb\xbf" + REVENUE.encode())
    done = spendstream_here("customers", "import-revenue", str(path), "-c", config, cwd=tmp_path)
    assert done.returncode == EXIT_OK, done.stderr
    assert "stored 1 revenue rows" in done.stdout
    margin = spendstream_here(
        "customers", "margin", "--since", "2026-12-01", "--until", "2027-01-01",
        "-f", "json", "-c", config, cwd=tmp_path,
    )  # fmt: skip
    [acme] = [json.loads(line) for line in margin.stdout.splitlines()]
    assert (acme["customer"], Decimal(acme["revenue"])) == ("acme", Decimal("100.50"))
    path.write_text(REVENUE + "\nglobex,2026-12-01,2027-01-01,-3\n")  # a blank line 3
    refused = spendstream_here("customers", "import-revenue", str(path), "-c", config, cwd=tmp_path)
    assert refused.returncode == EXIT_USAGE
    assert "line 4: amount: Input should be greater than or equal to 0" in refused.stderr
