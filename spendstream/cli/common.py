"""Shared CLI plumbing: the --config and --format options, settings loading with friendly
errors and quiet logs, and the one emitter every command prints its rows through.

Output contract (docs/cli.md): a command's own output goes to stdout, logs and errors to stderr.
Nothing is ever truncated: tables size their columns to the content when stdout is not a
terminal and fold long cells on a terminal; money is printed exactly (Decimal, no exponent, no
trailing zeros: ``0``, ``6.866338012``). Cell text is never read as Rich markup.
"""

from __future__ import annotations

import csv
import enum
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Protocol

import typer

from spendstream.money import column_currency, format_money, is_money_column

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from spendstream.client_settings import ClientSettings
    from spendstream.config import Settings
    from spendstream.sinks.access import ApiClient

# Rich, the settings model (pydantic-settings), structlog and httpx are imported where first
# used, not here: `report --help` and `sql --help` load this module and need none of them.
# `report` and `sql` through a worker skip the settings model too (worker_or_none).

# Width when stdout is a pipe or file: wide enough that no table ever wraps or cuts a cell.
UNBOUNDED_WIDTH = 100_000


@cache
def _consoles() -> dict[str, Console]:
    from rich.console import Console

    return {
        "err_console": Console(stderr=True, soft_wrap=True, highlight=False),
        "console": Console(),  # interactive screens (``dev``); command output goes through emit()
    }


def __getattr__(name: str) -> Console:
    """``err_console`` and ``console``, made on first use (rich costs ~30 ms to import)."""
    if name in ("err_console", "console"):
        return _consoles()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def out_console() -> Console:
    """A console on the current ``sys.stdout`` (test runners swap it) that never cuts lines."""
    from rich.console import Console

    stream = sys.stdout
    width = None if stream.isatty() else UNBOUNDED_WIDTH
    return Console(file=stream, width=width, soft_wrap=True, highlight=False)


class OutputFormat(enum.StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


OutputOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        "-f",
        help="table (for people), csv (header row) or json (one object per line)",
        case_sensitive=False,
    ),
]

ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML config file whose [pricing], [[budgets]] and [alerts] tables apply "
        "(default: $SPENDSTREAM_CONFIG or ./spendstream.toml)",
    ),
]


class Tabular(Protocol):
    """Anything with column names and rows (e.g. ``sinks.access.QueryResult``)."""

    columns: list[str]
    rows: list[list[Any]]


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
    _configure_logging(client_settings_of(settings), quiet)
    return settings


def worker_or_none(config: str | None) -> tuple[ApiClient, ClientSettings] | None:
    """The API of the worker that owns the configured chDB directory and the few settings a
    reading command needs, read without the settings model (~80 ms less at start), logging
    configured as :func:`settings_or_exit` does; or None: no worker runs, or the configuration
    is one only the full settings judge (the caller then calls :func:`settings_or_exit`, which
    reports any error)."""
    from spendstream.client_settings import read_client_settings
    from spendstream.sinks.access import worker_api_at

    found = read_client_settings(config)
    if found is None:
        return None
    api = worker_api_at(found.dsn, found.api_token)
    if api is None:
        return None
    _configure_logging(found, quiet=True)
    return api, found


def _configure_logging(found: ClientSettings, quiet: bool) -> None:
    from spendstream.logs import configure_logging

    level = found.log_level
    if quiet and not found.log_level_set and level.lower() == "info":
        level = "warning"
    configure_logging(level, found.log_format, found.secrets)


def say(label: str, message: str, style: str = "red") -> None:
    """Print ``label message`` on stderr; ``message`` (exception or event text) is literal,
    never Rich markup."""
    from rich.text import Text

    _consoles()["err_console"].print(Text.assemble((label, style), " ", message))


def fail(message: str, code: int = 1, label: str = "error:") -> NoReturn:
    """:func:`say` ``error: message`` and exit with ``code``."""
    say(label, message)
    raise typer.Exit(code)


def parse_moment(text: str, now: datetime | None = None) -> datetime:
    """``2026-11-01``, an ISO timestamp, ``now``, or a relative ``30m``/``24h``/``7d`` ago (UTC)."""
    now = now or datetime.now(UTC)
    text = text.strip()
    if text == "now":
        return now
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    if text[-1:] in units and text[:-1].isdigit():
        return now - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a time: use ISO 8601 (2026-11-01T12:00Z), 'now' or 30m/24h/7d"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cell_text(value: Any) -> str:
    """A cell as text: exact Decimals, ISO times, JSON for nested values, "" for NULL."""
    from spendstream.sinks.access import jsonable

    if value is None:
        return ""
    shown = jsonable(value)
    return shown if isinstance(shown, str) else json.dumps(shown, default=str)


def emit(result: Tabular, output: OutputFormat | str, title: str | None = None) -> None:
    """Print rows as a table, CSV (header row first) or JSON lines, on stdout."""
    emit_rows(result.columns, result.rows, output, title)


def emit_rows(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    output: OutputFormat | str,
    title: str | None = None,
    caption: str | None = None,
) -> None:
    """:func:`emit` for plain column names and rows."""
    from spendstream.sinks.access import jsonable

    fmt = OutputFormat(output)
    if fmt is OutputFormat.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([cell_text(value) for value in row] for row in rows)
    elif fmt is OutputFormat.json:
        for row in rows:
            record = dict(zip(columns, jsonable(list(row)), strict=True))
            sys.stdout.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    else:
        out_console().print(_table(columns, rows, title, caption))


def _table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    title: str | None,
    caption: str | None,
) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=Text(title) if title else None,
        caption=Text(caption) if caption else None,
        header_style="bold",
    )
    for index, name in enumerate(columns):
        numeric = bool(rows) and all(_is_number(row[index]) for row in rows)
        table.add_column(
            Text(name), justify="right" if numeric else "left", overflow="fold", no_wrap=numeric
        )
    money = [is_money_column(name) for name in columns]
    # a "currency" column (e.g. budgets in euros) says which currency the row's money is in
    at = list(columns).index("currency") if "currency" in columns else None
    for row in rows:
        code = str(row[at]) if at is not None else "USD"
        table.add_row(
            *(
                Text(_shown(value, is_money, column_currency(name, code)))
                for value, is_money, name in zip(row, money, columns, strict=True)
            )
        )
    return table


def _shown(value: Any, is_money: bool, currency: str = "USD") -> str:
    """A table cell; money by the one rule (spendstream.money), which CSV and JSON skip."""
    if is_money and isinstance(value, Decimal | int) and not isinstance(value, bool):
        return format_money(Decimal(value), currency)
    if is_money and isinstance(value, str):
        try:
            return format_money(Decimal(value), currency)
        except ArithmeticError:
            return value
    return cell_text(value)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float | Decimal):
        return True
    try:
        Decimal(str(value))
    except ArithmeticError:
        return False
    return True
