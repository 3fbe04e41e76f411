"""``spendstream explain``: why spend changed between two periods (docs/explain.md)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from spendstream.cli.common import (
    ConfigOption,
    OutputFormat,
    OutputOption,
    emit_rows,
    fail,
    out_console,
    parse_moment,
    reading,
    settings_or_exit,
)
from spendstream.durations import parse_duration
from spendstream.explain import Contributor, Scope, explain, periods
from spendstream.sinks.access import jsonable

FilterOption = Annotated[
    list[str] | None,
    typer.Option("--filter", help="key=value on a column or tag (repeatable)"),
]


def explain_command(
    since: Annotated[str, typer.Option(help="period start: ISO time or 24h/7d ago")] = "24h",
    until: Annotated[str, typer.Option(help="period end (exclusive)")] = "now",
    vs: Annotated[
        str | None, typer.Option(help="baseline: the period moved back by this (default 7d)")
    ] = None,
    vs_since: Annotated[str | None, typer.Option(help="baseline start (with --vs-until)")] = None,
    vs_until: Annotated[str | None, typer.Option(help="baseline end (exclusive)")] = None,
    filter: FilterOption = None,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Why spend changed: the delta split into drivers that add up to it exactly, where it
    lives (team → app → feature → user → model) and one sentence to paste into a channel."""
    filters: dict[str, list[str]] = {}
    for item in filter or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--filter {item!r}: write key=value, e.g. --filter team=search", 2)
        filters.setdefault(key.strip(), []).append(value)
    try:
        period, baseline = periods(
            parse_moment(since),
            parse_moment(until),
            parse_duration(vs) if vs else None,
            parse_moment(vs_since) if vs_since else None,
            parse_moment(vs_until) if vs_until else None,
        )
    except ValueError as exc:
        fail(str(exc), 2)
    settings = settings_or_exit(config)
    try:
        with reading(settings) as reader:
            answer = explain(reader, Scope(filters), period, baseline)
    except ValueError as exc:
        fail(str(exc), 2)
    if output == OutputFormat.json:
        typer.echo(json.dumps(jsonable(answer.to_json()), ensure_ascii=False))
        return
    console = out_console()
    console.print(answer.sentence, markup=False, highlight=False)
    emit_rows(
        ["driver", "amount_usd", "share"],
        [[d.label, d.amount, _percent(d.share)] for d in answer.drivers],
        output,
        title="Drivers (they add up to the delta exactly)",
    )
    rows: list[list[Any]] = []
    for node in answer.contributors:
        _tree_rows(node, 0, rows)
    emit_rows(
        ["where", "before_usd", "after_usd", "delta_usd", "share", "top driver"],
        rows,
        output,
        title="Where it changed",
    )


def _percent(share: Any) -> str:
    return "" if share is None else f"{share * 100:.1f} %"


def _tree_rows(node: Contributor, depth: int, rows: list[list[Any]]) -> None:
    dimension, value = node.path[-1]
    top = node.drivers[0].label if node.drivers else ""
    rows.append(
        [
            "  " * depth + f"{dimension}={value}",
            node.before,
            node.after,
            node.delta,
            _percent(node.share),
            top,
        ]
    )
    for child in node.children:
        _tree_rows(child, depth + 1, rows)
