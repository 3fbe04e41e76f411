"""Shared CLI plumbing: the --config option, settings loading with friendly errors, tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from spendstream.config import ConfigError, Settings, load_settings
from spendstream.logs import configure_logging

console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML config file (default: $SPENDSTREAM_CONFIG or ./spendstream.toml)",
    ),
]


def settings_or_exit(config: str | None, **overrides: Any) -> Settings:
    """Load settings and configure logging; print the error and exit 2 when invalid."""
    try:
        settings = load_settings(config, **overrides)
    except ConfigError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    configure_logging(settings.log.level, settings.log.format)
    return settings


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


def print_table(columns: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    """Render rows as a rich table (numbers right-aligned)."""
    table = Table(title=title, header_style="bold")
    for index, name in enumerate(columns):
        numeric = bool(rows) and all(_is_number(row[index]) for row in rows)
        table.add_column(name, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*("" if value is None else str(value) for value in row))
    console.print(table)


def _is_number(value: Any) -> bool:
    if isinstance(value, int | float) or type(value).__name__ == "Decimal":
        return True
    try:
        float(str(value))
    except ValueError:
        return False
    return True
