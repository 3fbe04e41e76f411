"""Shared CLI plumbing for Typer commands: the --config and --format options, settings loading
with friendly errors and quiet logs, usage errors and exits. What commands print goes through
:mod:`spendstream.cli.output`; reading through a worker is :mod:`spendstream.cli.reading` (both
without Typer, re-exported here for the commands)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from spendstream.cli.output import (
    UNBOUNDED_WIDTH,
    OutputFormat,
    Tabular,
    cell_text,
    consoles,
    emit,
    emit_rows,
    out_console,
    say,
)
from spendstream.cli.reading import configure_cli_logging, read_moment, worker_or_none

if TYPE_CHECKING:
    from rich.console import Console

    from spendstream.config import Settings
    from spendstream.sinks.access import Reader

# The settings model (pydantic-settings), structlog and httpx are imported where first used,
# not here: `report --help` and `sql --help` load this module and need none of them. `report`
# and `sql` through a worker skip the settings model too (worker_or_none).
__all__ = [
    "UNBOUNDED_WIDTH",
    "ConfigOption",
    "OutputFormat",
    "OutputOption",
    "SinceOption",
    "Tabular",
    "UntilOption",
    "cell_text",
    "emit",
    "emit_rows",
    "fail",
    "out_console",
    "parse_moment",
    "reading",
    "refuse_beside_worker",
    "say",
    "settings_or_exit",
    "worker_or_none",
]


def __getattr__(name: str) -> Console:
    """``err_console`` and ``console``, made on first use (rich costs ~30 ms to import)."""
    if name in ("err_console", "console"):
        return consoles()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


OutputOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        "-f",
        help="table (for people), csv (header row) or json (one object per line)",
        case_sensitive=False,
    ),
]

SinceOption = Annotated[str, typer.Option(help="start: ISO time, 'now' or 30m/24h/7d ago")]
UntilOption = Annotated[str, typer.Option(help="end (exclusive): ISO time, 'now' or 7d ago")]

ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML config file whose [pricing], [[budgets]] and [alerts] tables apply "
        "(default: $SPENDSTREAM_CONFIG or ./spendstream.toml)",
    ),
]


def settings_or_exit(config: str | None, quiet: bool = True, **overrides: Any) -> Settings:
    """Load settings and configure logging; print the error and exit 2 when invalid.

    With ``quiet`` (every command but long-running services), info logs such as ``pricing
    loaded`` are hidden unless ``log.level`` was set explicitly (file or environment).
    """
    from spendstream.client_settings import client_settings_of
    from spendstream.config import ConfigError, load_settings

    try:
        settings = load_settings(config, **overrides)
    except ConfigError as exc:
        fail(str(exc), 2)
    configure_cli_logging(client_settings_of(settings), quiet)
    return settings


@contextmanager
def reading(settings: Settings) -> Iterator[Reader]:
    """A reader for the configured ledger (the worker's API while one owns the directory); the
    clients of a direct read are closed afterwards (chDB allows one data directory per process
    at a time). clickhouse-connect is imported only for a direct read."""
    from spendstream.sinks.access import WorkerReader, open_reader

    reader = open_reader(settings)
    try:
        yield reader
    finally:
        if not isinstance(reader, WorkerReader):
            reader.close()


def refuse_beside_worker(settings: Settings, writes: str, code: int = 2) -> None:
    """Exit ``code`` saying what to do when a live worker holds the configured chDB directory:
    chDB opens a directory in one process only, and a command that ``writes`` (e.g. "reconcile
    import writes invoice lines") has no route through the worker's API."""
    from spendstream.sinks.access import running_worker_url
    from spendstream.sinks.client import chdb_directory

    url = running_worker_url(settings)
    if url is not None:
        fail(
            f"a worker ({url}) holds the chDB directory "
            f"{chdb_directory(settings.clickhouse.dsn)}; {writes}, so stop the worker first "
            "(Ctrl-C `spendstream dev` or `spendstream worker`) and run it again, or use an "
            "http:// ClickHouse DSN",
            code,
        )


def fail(message: str, code: int = 1, label: str = "error:") -> NoReturn:
    """:func:`say` ``error: message`` and exit with ``code``."""
    say(label, message)
    raise typer.Exit(code)


def parse_moment(text: str, now: datetime | None = None) -> datetime:
    """:func:`~spendstream.cli.reading.read_moment`, a bad time a usage error (exit 2)."""
    try:
        return read_moment(text, now)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
