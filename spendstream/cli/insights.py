"""``spendstream insights NAME``: where to save, from the ledger (docs/insights.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from spendstream.cli.common import (
    ConfigOption,
    console,
    err_console,
    parse_moment,
    print_table,
    settings_or_exit,
)
from spendstream.cli.data import OutputOption, emit
from spendstream.cli.ledger import SinceOption, UntilOption, reading
from spendstream.config import ConfigError
from spendstream.insights import INSIGHTS, Context, InsightError, Window, parse_scope, run_insight
from spendstream.pricing import load_pricer
from spendstream.sinks.access import QueryResult

ScopeOption = Annotated[
    list[str] | None,
    typer.Option("--scope", "-s", help="key=value filter on a column or tag (repeatable)"),
]


def insights(
    name: Annotated[str, typer.Argument(help="insight name, or 'list'")],
    since: SinceOption = "30d",
    until: UntilOption = "now",
    scope: ScopeOption = None,
    config: ConfigOption = None,
    output: OutputOption = "table",
) -> None:
    """Run one insight over [since, until) (`spendstream insights list` names them)."""
    if name == "list":
        rows = [[item.name, item.description] for item in INSIGHTS.values()]
        print_table(["name", "description"], rows, title="Insights")
        return
    settings = settings_or_exit(config)
    try:
        pricer = load_pricer(settings)
        window = Window(parse_moment(since), parse_moment(until), parse_scope(scope or []))
    except (ConfigError, InsightError) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    try:
        with reading(settings) as reader:
            result = run_insight(name, Context(reader, pricer, settings.insights, window))
    except InsightError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    emit(QueryResult(result.columns, result.rows), output, title=f"{name}  {since} → {until}")
    if output == "table" and result.note:
        console.print(f"[dim]{result.note}[/dim]")
