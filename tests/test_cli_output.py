"""CLI output (#10 defects 4, 5, 7, 10): piped output is never cut, money is exact, -f works
everywhere, logs stay off stdout, `send -` reads stdin, firing thresholds are sorted, help texts
keep their brackets."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import pytest
import typer
from clickhouse_connect.driver.client import Client
from typer.testing import CliRunner

from spendstream.alerts.status import firing_alerts as _firing
from spendstream.cli.common import emit_rows, out_console, say
from spendstream.cli.root import app
from spendstream.events import UsageEvent
from spendstream.money import decimal_text, format_usd
from spendstream.pricing import default_pricer
from spendstream.sinks.access import QueryResult, jsonable
from tests.support.ledger_data import fill_ledger, write_config

LONG_TEAM = "platform-inference-and-evaluation-research-team-with-a-very-long-name"


def run_piped(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real command with stdout a pipe and no COLUMNS: what `| grep` sees."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "SPENDSTREAM_CONFIG")}
    return subprocess.run(
        [sys.executable, "-m", "spendstream", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        input=stdin,
    )


def test_decimal_text_is_exact_without_exponent() -> None:
    assert decimal_text(Decimal("0E-18")) == "0"
    assert decimal_text(Decimal("-0E-18")) == "0"
    assert decimal_text(Decimal("6.866338012345678901")) == "6.866338012345678901"
    assert decimal_text(Decimal("6.866338000000000000")) == "6.866338"
    assert decimal_text(Decimal("1E+2")) == "100"
    # What a running worker's JSON carries is the same text.
    assert jsonable([Decimal("0E-18"), Decimal("2.500000000000000000")]) == ["0", "2.5"]


def test_prices_list_piped_is_whole_in_every_format(tmp_path: Path) -> None:
    names = sorted(f"{e.provider}/{e.model}" for e in default_pricer().catalog.models)
    table = run_piped("prices", "list", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "…" not in table.stdout
    for line in table.stdout.splitlines():
        for token in re.findall(r"claude[\w.\-]*", line):
            assert any(name.endswith("/" + token) for name in names), token
    for name in names:
        assert re.search(rf"\b{re.escape(name.split('/')[1])}\b", table.stdout), name
    assert "pricing loaded" not in table.stdout + table.stderr  # info logs are quiet

    rows = list(
        csv.DictReader(io.StringIO(run_piped("prices", "list", "-f", "csv", cwd=tmp_path).stdout))
    )
    assert sorted(f"{r['provider']}/{r['model']}" for r in rows) == names
    large = next(r for r in rows if r["model"] == "mistral-large")
    assert (large["input"], large["output"]) == ("0.5", "1.5")

    lines = run_piped("prices", "list", "-f", "json", "-p", "openai", cwd=tmp_path).stdout
    records = [json.loads(line) for line in lines.splitlines()]
    gpt4o = next(r for r in records if r["model"] == "gpt-4o")
    assert (gpt4o["input"], gpt4o["cache read"], gpt4o["since"]) == ("2.5", "1.25", "2024-10-02")


def test_report_prints_exact_money_and_zero_in_every_format(
    tmp_path: Path, ledger_client: Client, chdb_path: Path
) -> None:
    events = [
        UsageEvent(
            provider="openai", model="gpt-4o", input_tokens=123_457, output_tokens=9_871
        ).model_copy(update={"tags": {"team": LONG_TEAM}}),
        UsageEvent(provider="openai", model="gpt-7-unknown", input_tokens=5, tags={"team": "z"}),
    ]
    rated = fill_ledger(ledger_client, events)
    exact = decimal_text(rated[0][1].cost_total)
    assert len(exact) > 8  # more digits than a narrow column would show
    config = str(write_config(tmp_path, chdb_path))
    ledger_client.close()  # chDB: one process per data directory

    table = run_piped("report", "--by", "team", "--since", "3650d", "-c", config, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    # tables show money by the one rule (spendstream.money); CSV and JSON keep every digit
    assert LONG_TEAM in table.stdout and format_usd(rated[0][1].cost_total) in table.stdout
    assert "E-" not in table.stdout and "…" not in table.stdout
    as_csv = run_piped(
        "report", "--by", "team", "--since", "3650d", "-c", config, "-f", "csv", cwd=tmp_path
    )
    assert exact in as_csv.stdout

    as_json = run_piped(
        "report", "--by", "team", "--since", "3650d", "-c", config, "-f", "json", cwd=tmp_path
    )
    records = {r["team"]: r for r in map(json.loads, as_json.stdout.splitlines())}
    assert exact in records[LONG_TEAM].values()
    zero_row = records["z"]
    assert "0" in zero_row.values() and not any("E" in str(v) for v in zero_row.values())

    as_csv = run_piped(
        "report", "--by", "team", "--since", "3650d", "-c", config, "-f", "csv", cwd=tmp_path
    )
    parsed = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert "team" in parsed[0] and any(exact in row for row in parsed[1:])


class Reader:
    def __init__(self, rows: list[list[Any]]) -> None:
        self.rows = rows

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult:
        return QueryResult(["budget", "kind", "threshold"], self.rows)


def test_firing_thresholds_are_listed_ascending() -> None:
    rows: list[list[Any]] = [
        ["b", "threshold", 80],
        ["b", "forecast", 0],
        ["b", "threshold", 100],
        ["a", "threshold", 9],
        ["b", "threshold", 50],
        ["b", "spike", 0],
    ]
    assert _firing(Reader(rows), ["a", "b"]) == {"a": "9%", "b": "50%, 80%, 100%, forecast, spike"}


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[Any, tuple[str, ...]]]:
    """Every command with its path; groups are asked by name (the root loads them lazily)."""
    found = [(command, path)]
    if hasattr(command, "list_commands"):  # a group (typer may vendor its own click)
        context = click.Context(command)
        for name in command.list_commands(context):
            found += _commands(command.get_command(context, name), (*path, name))
    return found


def test_help_texts_keep_bracketed_words() -> None:
    """Rich markup no longer eats `[pricing]`: every bracketed word of every help text shows."""
    root = typer.main.get_command(app)
    runner = CliRunner()
    checked = 0
    for command, path in _commands(root):
        texts = [command.help or ""] + [
            getattr(param, "help", None) or "" for param in command.params
        ]
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        flat = " ".join(result.output.split())
        for token in re.findall(r"\[\[?[a-z_.]+\]\]?", " ".join(texts)):
            assert token in flat, (path, token)
            checked += 1
    assert checked >= 10
    prices = runner.invoke(app, ["prices", "list", "--help"])
    assert "whose [pricing], [[budgets]] and [alerts] tables apply" in " ".join(
        prices.output.split()
    )


@pytest.mark.integration
def test_send_dash_reads_standard_input(tmp_path: Path, broker: Any) -> None:
    config = tmp_path / "spendstream.toml"
    config.write_text(
        f'[kafka]\nbootstrap_servers = "{broker.bootstrap_servers}"\n'
        f'[producer]\nspool_dir = "{tmp_path / "spool"}"\n'
    )
    events = [UsageEvent(provider="openai", model="gpt-4o", input_tokens=n + 1) for n in range(3)]
    stdin = "".join(event.model_dump_json() + "\n" for event in events) + "not json\n"
    result = run_piped("send", "-", "--config", str(config), cwd=tmp_path, stdin=stdin)
    assert result.returncode == 1, result.stderr  # one bad line
    assert result.stdout.strip() == "accepted 3, rejected 1"
    assert "line 4: payload: not valid JSON" in result.stderr
    missing = run_piped("send", "nope.jsonl", "--config", str(config), cwd=tmp_path)
    assert missing.returncode == 2 and "cannot read nope.jsonl" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_cells_and_messages_are_never_rich_markup(capsys: pytest.CaptureFixture[str]) -> None:
    hostile = "[link=https://evil.example]click[/link] [bold red]x[/]"
    emit_rows(["user", "cost"], [[hostile, Decimal("0E-18")]], "table", title="[red]t[/red]")
    say("line 1:", hostile)
    captured = capsys.readouterr()
    assert hostile in captured.out and "[red]t[/red]" in captured.out
    assert "\x1b]8;" not in captured.out  # no terminal hyperlink escape
    assert hostile in captured.err


def test_emoji_codes_from_events_print_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    """Explain prints its sentence as a string: a tag value like ``:fire:`` stays text."""
    out_console().print("feature=:fire: grew :smile:", markup=False, highlight=False)
    say("warning:", "user :fire:")
    captured = capsys.readouterr()
    assert "feature=:fire: grew :smile:" in captured.out
    assert "user :fire:" in captured.err


def test_every_table_command_takes_the_shared_format_option(tmp_path: Path) -> None:
    config = tmp_path / "spendstream.toml"
    config.write_text(
        '[[budgets]]\nname = "b1"\nlimit = "10"\nthresholds = [80, 50]\n'
        'owner = "[bold]ops[/bold]"\n'
    )
    runner = CliRunner()
    env = {"SPENDSTREAM_CONFIG": str(config)}
    show = runner.invoke(app, ["prices", "show", "gpt-4o", "-p", "openai", "-f", "json"], env=env)
    rows = [json.loads(line) for line in show.stdout.splitlines()]
    assert [(r["from"], r["input"]) for r in rows] == [("2024-05-13", "5"), ("2024-10-02", "2.5")]
    budgets = runner.invoke(app, ["budgets", "list", "-f", "csv"], env=env)
    (row,) = list(csv.DictReader(io.StringIO(budgets.stdout)))
    assert (row["thresholds"], row["owner"]) == ("50%, 80%", "[bold]ops[/bold]")
    audits = runner.invoke(app, ["audit", "list", "-f", "json"], env=env)
    assert {json.loads(line)["name"] for line in audits.stdout.splitlines()} >= {"cost_per_model"}
    bad = runner.invoke(app, ["budgets", "list", "-f", "xml"], env=env)
    assert bad.exit_code == 2 and "xml" in bad.output
