"""The CLI starts light: ``spendstream --help`` imports none of the worker side, ``report`` and
``sql`` through a worker's API load no httpx, structlog or event models, and the lazy command
table lists each command with its own help line (timing is in bench/cli_startup.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer.main
from typer.testing import CliRunner, Result

from spendstream.cli.root import COMMANDS, app, load_command
from tests.support.ledger_template import copy_template

pytest_plugins = ["tests.support.announced_worker"]  # announced_worker

HEAVY = ("pyarrow", "faust", "clickhouse_connect", "chdb", "fastapi", "kafka", "pandas")
# What a reading command needs only when it runs (settings, logs, HTTP, tables), not for help.
RUN_ONLY = ("pydantic_settings", "structlog", "httpx", "rich")
# What `report` and `sql` load for nothing when a worker answers: httpx (~100-190 ms: its
# `_main` pulls Click, Rich's progress bars and Pygments), structlog (Rich's traceback, attrs,
# asyncio) when nothing logs, the event models, the currency conversion the worker does.
NOT_FOR_A_WORKERS_ANSWER = ("httpx", "httpcore", "h11", "h2", "structlog", "attr", "click")
# Nor Typer (~60 ms with its vendored Click and gettext): spendstream.cli.quick runs without it.
TYPER = ("typer", "gettext")
NOT_FOR_A_WORKERS_ANSWER_IN_PACKAGE = ("spendstream.events", "spendstream.currency")
# Nor the settings model (pydantic-settings, ~80 ms with building the models): the few keys such
# a command reads come from spendstream.client_settings (tests/test_client_settings.py); nor
# pydantic at all, which Typer's option parsing needs (spendstream.cli.quick, test_cli_quick.py).
SETTINGS_MODEL = ("pydantic", "spendstream.config")
PROBE = """
import json, sys
sys.argv = ["spendstream", *json.loads(sys.argv[1])]
from spendstream.cli import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def run_probe(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[str, set[str]]:
    """Run the CLI with ``args`` in a fresh interpreter: its stdout and every module it loaded."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(args))],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
    return done.stdout, set(json.loads(done.stderr.strip().splitlines()[-1]))


def modules_after(*args: str) -> set[str]:
    """The top-level packages loaded by the CLI run with ``args``."""
    return {name.split(".")[0] for name in run_probe(*args)[1]}


@pytest.mark.parametrize("args", [["--help"], ["report", "--help"], ["sql", "--help"]])
def test_help_imports_nothing_of_the_worker_side(args: list[str]) -> None:
    loaded = modules_after(*args)
    assert "typer" in loaded  # the probe ran the CLI
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert not loaded & set(RUN_ONLY), sorted(loaded & set(RUN_ONLY))


def test_the_command_table_matches_each_commands_own_help() -> None:
    root = typer.main.get_command(app)
    context = click.Context(root)
    for name, (_, _, short_help) in COMMANDS.items():
        command = load_command(name)
        assert command.get_short_help_str(300) == short_help, name
        assert root.get_command(context, name) is not None
    listed = root.list_commands(context)
    assert listed[: len(COMMANDS)] == list(COMMANDS)


@pytest.mark.integration  # the CLI in its own process
@pytest.mark.parametrize(
    ("args", "shown"), [(["report"], "12.5"), (["sql", "SELECT 'through the API'"], "through")]
)
def test_reading_through_a_worker_loads_no_http_library_or_logging(
    announced_worker: Path, args: list[str], shown: str
) -> None:
    output, loaded = run_probe(*args, cwd=announced_worker, env={"SPENDSTREAM_TOKEN": "t"})
    assert shown in output  # the command ran, and asked the stand-in
    top = {name.split(".")[0] for name in loaded}
    unwanted = {*HEAVY, *NOT_FOR_A_WORKERS_ANSWER, *TYPER}
    assert not top & unwanted, sorted(top & unwanted)
    prefixes = (*NOT_FOR_A_WORKERS_ANSWER_IN_PACKAGE, *SETTINGS_MODEL)
    inside = {n for n in loaded if n.startswith(prefixes)}
    assert not inside, sorted(inside)


@pytest.mark.integration  # the CLI opening chDB in its own process
def test_reading_chdb_directly_loads_no_http_library_or_logging(
    tmp_path: Path, migrated_template: Path
) -> None:
    ledger = copy_template(migrated_template, tmp_path / "ch")  # a command creates no ledger
    (tmp_path / "spendstream.toml").write_text(f'[clickhouse]\ndsn = "chdb://{ledger}"\n')
    output, loaded = run_probe("sql", "SELECT 'straight from chDB'", cwd=tmp_path)
    assert "straight from chDB" in output
    top = {name.split(".")[0] for name in loaded}
    assert "chdb" in top  # pyarrow and numpy come with chdb itself
    unwanted = {"faust", "fastapi", "kafka", *NOT_FOR_A_WORKERS_ANSWER}
    assert not top & unwanted, sorted(top & unwanted)


def run_configured(worker: Path, added: str, args: list[str]) -> Result:
    """The CLI in this process beside the announced worker, ``added`` appended to its config."""
    config = worker / "spendstream.toml"
    config.write_text(config.read_text() + added)
    return CliRunner().invoke(app, args, env={"SPENDSTREAM_TOKEN": "t", "COLUMNS": "200"})


@pytest.mark.parametrize("args", [["report"], ["sql", "SELECT 1"]])
def test_a_bad_value_is_refused_as_before_while_a_worker_runs(
    announced_worker: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """The quick settings read steps aside; the settings model names file, key and fix."""
    monkeypatch.chdir(announced_worker)
    done = run_configured(announced_worker, '[currency]\ndisplay = "eur"\n', args)
    assert done.exit_code == 2, done.output
    assert "currency.display = 'eur'" in done.output
    assert "SPENDSTREAM_CURRENCY__DISPLAY" in done.output


@pytest.mark.parametrize(
    ("args", "shown"), [(["report"], "12.5"), (["sql", "SELECT 'asked'"], "asked")]
)
def test_a_configuration_beyond_the_quick_read_still_reaches_the_worker(
    announced_worker: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], shown: str
) -> None:
    monkeypatch.chdir(announced_worker)
    done = run_configured(announced_worker, '[kafka]\nbootstrap_servers = "k:9092"\n', args)
    assert done.exit_code == 0, done.output
    assert shown in done.output


# What answers through a worker's API never needs: the server side (FastAPI, the alert
# channels) and a direct ClickHouse client. Their package roots used to pull them in (~0.7 s).
SERVER_SIDE = ("fastapi", "starlette", "apprise", "clickhouse_connect", "chdb", "uvicorn")


@pytest.mark.parametrize(
    "module",
    [
        "spendstream.cli.explain",
        "spendstream.cli.advice",
        "spendstream.cli.insights",
        "spendstream.cli.agents",
    ],
)
def test_commands_that_read_through_a_worker_import_no_server_side(module: str) -> None:
    probe = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    top = {name.split(".")[0] for name in json.loads(done.stdout)}
    assert module in json.loads(done.stdout)
    assert not top & set(SERVER_SIDE), sorted(top & set(SERVER_SIDE))
