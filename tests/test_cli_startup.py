"""The CLI starts light: ``spendstream --help`` imports none of the worker side, and the lazy
command table lists each command with its own help line (timing is in bench/cli_startup.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
import typer.main

from spendstream.cli import COMMANDS, app, load_command

HEAVY = ("pyarrow", "faust", "clickhouse_connect", "chdb", "fastapi", "kafka", "pandas")
# What a reading command needs only when it runs (settings, logs, HTTP, tables), not for help.
RUN_ONLY = ("pydantic_settings", "structlog", "httpx", "rich")
PROBE = """
import json, sys
from spendstream.cli import app
sys.argv = ["spendstream", *json.loads(sys.argv[1])]
try:
    app()
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})), file=sys.stderr)
"""


def modules_after(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(args))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


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
