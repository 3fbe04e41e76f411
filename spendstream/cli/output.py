"""What every command prints through, without Typer (``report`` and ``sql`` through a worker
run without it: :mod:`spendstream.cli.quick`).

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
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from spendstream.money import column_currency, format_money, is_money_column

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

# Rich is imported where first used (~30 ms): `report --help` and `sql --help` need none of it.

# Width when stdout is a pipe or file: wide enough that no table ever wraps or cuts a cell.
UNBOUNDED_WIDTH = 100_000


@cache
def consoles() -> dict[str, Console]:
    from rich.console import Console

    return {
        "err_console": Console(stderr=True, soft_wrap=True, highlight=False, emoji=False),
        "console": Console(),  # interactive screens (``dev``); command output goes through emit()
    }


def out_console() -> Console:
    """A console on the current ``sys.stdout`` (test runners swap it) that never cuts lines."""
    from rich.console import Console

    stream = sys.stdout
    width = None if stream.isatty() else UNBOUNDED_WIDTH
    # emoji=False: a ":smile:" in a tag value or a sentence made from one prints as written
    # (text from events is inert), and Rich's emoji table (~80 ms) is never loaded.
    return Console(file=stream, width=width, soft_wrap=True, highlight=False, emoji=False)


class OutputFormat(enum.StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class Tabular(Protocol):
    """Anything with column names and rows (e.g. ``sinks.access.QueryResult``)."""

    columns: list[str]
    rows: list[list[Any]]


def say(label: str, message: str, style: str = "red") -> None:
    """Print ``label message`` on stderr; ``message`` (exception or event text) is literal,
    never Rich markup."""
    from rich.text import Text

    consoles()["err_console"].print(Text.assemble((label, style), " ", message))


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
