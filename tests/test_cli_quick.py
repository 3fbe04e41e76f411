"""`report` and `sql` through a worker without Typer's parsing (spendstream.cli.quick): each plain
form prints and exits exactly as through Typer; anything else is left to Typer."""

from __future__ import annotations

import inspect
import io
import sys
from datetime import datetime, tzinfo
from pathlib import Path

import pytest

from spendstream.cli import data, quick, reading
from spendstream.cli.root import app

pytest_plugins = ["tests.support.announced_worker"]  # announced_worker

TAKEN = [
    ["report", "-f", "json"],
    ["report", "--by", "team", "-b", "app", "--since", "2026-11-01", "--until=2026-11-30T00:00Z"],
    ["report", "--format=CSV", "--limit", "5", "--unpriced", "--currency", "eur", "--since", "7d"],
    [
        "report",
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-02",
        "--limit=0",
        "-c",
        "spendstream.toml",
    ],
    ["report", "--by", "bad", "-f", "json"],  # refused by the API: exit 1
    ["sql", "SELECT 'x'"],
    ["sql", "-f", "json", "SELECT 'x'"],
    ["sql", "-", "--format", "Csv"],  # the query from stdin
    ["sql", "refuse"],  # 400: exit 1
    ["sql", "busy"],  # 503: exit 3
    ["sql", "boom"],  # 500: exit 4
]
LEFT_TO_TYPER = [
    ["report", "--help"],
    ["sql", "--help"],
    ["report", "--limit", "x"],
    ["report", "--limit", "-5"],
    ["report", "--limit", "07"],
    ["report", "--since", "yesterday"],
    ["report", "--format", "xml"],
    ["report", "--nope"],
    ["report", "-b"],
    ["report", "-bteam"],
    ["report", "--limit", "5", "--limit", "6"],
    ["report", "--unpriced=yes"],
    ["report", "stray"],
    ["sql"],
    ["sql", "a", "b"],
    ["sql", "--", "-x"],
    ["dev", "--help"],
]


class FrozenClock(datetime):
    """``now`` at one instant, so that both runs of a relative period (30d, 7d) ask the same."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> FrozenClock:
        return cls(2026, 12, 7, 3, 30, 15, 123000, tzinfo=tz)


def through(
    runner: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``argv`` run by the quick path or by Typer."""
    sys.stdin = io.StringIO("SELECT 'from stdin'")
    if runner == "quick":
        code = quick.run(argv)
        assert code is not None, argv
    else:
        try:
            app(argv, prog_name="spendstream")
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv", TAKEN, ids=" ".join)
def test_a_plain_form_runs_as_through_typer(
    announced_worker: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    monkeypatch.chdir(announced_worker)
    monkeypatch.setenv("SPENDSTREAM_TOKEN", "t")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(sys, "stdin", sys.stdin)  # restored after the test
    monkeypatch.setattr(reading, "datetime", FrozenClock)
    (announced_worker / "x.toml").write_text((announced_worker / "spendstream.toml").read_text())
    quick_run = through("quick", argv, capsys)
    typer_run = through("typer", argv, capsys)
    assert quick_run == typer_run
    assert quick_run[1] or quick_run[2]  # it printed something: the command ran


def test_the_exit_codes_are_the_commands(
    announced_worker: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(announced_worker)
    monkeypatch.setenv("SPENDSTREAM_TOKEN", "t")
    monkeypatch.setattr(sys, "stdin", sys.stdin)
    codes = {query: through("quick", ["sql", query], capsys)[0] for query in ("x", "refuse")}
    codes |= {query: through("quick", ["sql", query], capsys)[0] for query in ("busy", "boom")}
    assert codes == {"x": 0, "refuse": 1, "busy": 3, "boom": 4}


@pytest.mark.parametrize("argv", LEFT_TO_TYPER, ids=" ".join)
def test_anything_else_is_left_to_typer(
    announced_worker: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.chdir(announced_worker)
    monkeypatch.setenv("SPENDSTREAM_TOKEN", "t")
    assert quick.run(argv) is None


def test_without_a_worker_it_is_left_to_typer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "spendstream.toml").write_text(f'[clickhouse]\ndsn = "chdb://{tmp_path}/ch"\n')
    monkeypatch.chdir(tmp_path)
    assert quick.run(["sql", "SELECT 1"]) is None


@pytest.mark.parametrize(
    ("command", "defaults"),
    [(data.report, quick.REPORT_DEFAULTS), (data.sql, quick.SQL_DEFAULTS)],
    ids=["report", "sql"],
)
def test_the_quick_defaults_are_the_commands_own(command: object, defaults: dict) -> None:
    parameters = inspect.signature(command).parameters.values()  # type: ignore[arg-type]
    own = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
    assert defaults == own
