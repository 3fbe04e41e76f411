"""``spendstream insights NAME``: where to save, from the ledger (docs/insights.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from spendstream.cli.common import (
    ConfigOption,
    OutputFormat,
    OutputOption,
    SinceOption,
    UntilOption,
    emit_rows,
    fail,
    parse_moment,
    reading,
    settings_or_exit,
)
from spendstream.config import ConfigError
from spendstream.insights import INSIGHTS, Context, InsightError, Window, parse_scope, run_insight
from spendstream.pricing import load_pricer

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
    output: OutputOption = OutputFormat.table,
) -> None:
    """Run one insight over [since, until) (`spendstream insights list` names them)."""
    if name == "list":
        rows = [[item.name, item.description] for item in INSIGHTS.values()]
        emit_rows(["name", "description"], rows, output, title="Insights")
        return
    settings = settings_or_exit(config)
    try:
        pricer = load_pricer(settings)
        window = Window(parse_moment(since), parse_moment(until), parse_scope(scope or []))
    except (ConfigError, InsightError) as exc:
        fail(str(exc), 2)
    try:
        with reading(settings) as reader:
            result = run_insight(name, Context(reader, pricer, settings.insights, window))
    except InsightError as exc:
        fail(str(exc), 2)
    # The note (what the figures are, e.g. price estimates, never quality) is the caption.
    emit_rows(
        result.columns, result.rows, output, f"{name}  {since} → {until}", result.note or None
    )
