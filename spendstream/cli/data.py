"""Commands over stored data: migrate, sql, report."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from spendstream.cli.common import (
    ConfigOption,
    err_console,
    parse_moment,
    print_table,
    settings_or_exit,
)
from spendstream.sinks.access import QueryResult, jsonable, open_reader
from spendstream.sinks.client import connect
from spendstream.sinks.queries import REPORT_DIMENSIONS, spend_report_sql, unpriced_report_sql
from spendstream.worker.schema import migrate as apply_migrations


def migrate(config: ConfigOption = None) -> None:
    """Create or upgrade the ClickHouse schema (idempotent)."""
    settings = settings_or_exit(config)
    client = connect(settings.clickhouse.dsn, settings.clickhouse.database)
    applied = apply_migrations(client, settings.clickhouse.cluster)
    typer.echo(f"applied migrations: {applied}" if applied else "schema is up to date")


def emit(result: QueryResult, output: str, title: str | None = None) -> None:
    """Print a result as a table, CSV or JSON lines."""
    if output == "table":
        print_table(result.columns, result.rows, title)
    elif output == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(jsonable(result.rows))
    elif output == "json":
        for row in result.rows:
            typer.echo(json.dumps(dict(zip(result.columns, jsonable(row), strict=True))))
    else:
        raise typer.BadParameter(f"unknown format {output!r}: use table, csv or json")


OutputOption = Annotated[str, typer.Option("--format", "-f", help="table, csv or json")]


def sql(
    query: Annotated[str, typer.Argument(help="SQL to run; '-' reads it from stdin")],
    config: ConfigOption = None,
    output: OutputOption = "table",
) -> None:
    """Run a query against the configured ClickHouse and print the result."""
    settings = settings_or_exit(config)
    text = sys.stdin.read() if query == "-" else query
    try:
        result = open_reader(settings).query(text)
    except Exception as exc:
        err_console.print(f"[red]query failed:[/red] {exc}")
        raise typer.Exit(1) from None
    emit(result, output)


def report(
    by: Annotated[
        list[str] | None,
        typer.Option("--by", "-b", help=f"group by (repeatable): {', '.join(REPORT_DIMENSIONS)}"),
    ] = None,
    since: Annotated[str, typer.Option(help="start: ISO time or 30m/24h/7d ago")] = "30d",
    until: Annotated[str, typer.Option(help="end: ISO time or 'now'")] = "now",
    unpriced: Annotated[
        bool, typer.Option("--unpriced", help="list events stored without a price")
    ] = False,
    limit: int = 50,
    config: ConfigOption = None,
    output: OutputOption = "table",
) -> None:
    """Spend by tag over a period (from the deduplicated ledger)."""
    settings = settings_or_exit(config)
    start, end = parse_moment(since), parse_moment(until)
    try:
        if unpriced:
            query, params = unpriced_report_sql(start, end)
            title = "Unpriced events"
        else:
            query, params = spend_report_sql(by or ["team"], start, end, limit)
            period = f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC"
            title = f"Spend by {', '.join(by or ['team'])}  {period}"
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    emit(open_reader(settings).query(query, params), output, title)


def send(
    source: Annotated[
        Path | None, typer.Argument(help="JSON-lines file of usage events (default: stdin)")
    ] = None,
    flush_timeout: Annotated[float, typer.Option(help="seconds to wait for delivery")] = 30.0,
    config: ConfigOption = None,
) -> None:
    """Publish usage events from JSON lines through the SDK; every bad line is reported.

    Exit code: 0 when every line was accepted and delivered, 1 when some lines were rejected,
    3 when delivery did not finish in time (the rest stays in the spool and is sent later).
    """
    from spendstream.producers import Recorder, send_json_lines

    settings = settings_or_exit(config)
    with Recorder.from_settings(settings) as recorder:
        if source is None:
            report = send_json_lines(recorder, sys.stdin)
        else:
            with source.open() as handle:
                report = send_json_lines(recorder, handle)
        delivered = recorder.flush(timeout=flush_timeout)
    for error in report.errors:
        err_console.print(f"[red]line {error.line}:[/red] {error.reason}")
    typer.echo(f"accepted {report.accepted}, rejected {len(report.errors)}")
    if not delivered:
        spool = settings.producer.spool_dir
        err_console.print(f"[yellow]not all delivered yet; the rest waits in {spool}[/yellow]")
        raise typer.Exit(3)
    if report.errors:
        raise typer.Exit(1)
