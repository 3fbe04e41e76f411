"""Commands over stored data: migrate, sql, report."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from spendstream.cli.common import (
    ConfigOption,
    OutputFormat,
    OutputOption,
    emit,
    fail,
    parse_moment,
    say,
    settings_or_exit,
    worker_or_none,
)
from spendstream.cli.reading import (
    QueryRefused,
    ReportAsked,
    cut_report,
    print_worker_report,
    query_worker,
    report_from_worker,
)
from spendstream.sinks.queries import (
    REPORT_DIMENSIONS,
    report_columns,
    spend_report_sql,
    unpriced_report_sql,
)

if TYPE_CHECKING:
    from spendstream.sinks.access import ApiClient

# spendstream.sinks.access (the settings model) and the currency conversion are imported
# inside the commands, so that `sql --help` and `report --help` start without them.


def migrate(config: ConfigOption = None) -> None:
    """Create or upgrade the ClickHouse schema (idempotent)."""
    # Imported here: the schema pulls in every part's tables, which other commands do not need.
    from spendstream.sinks.client import connect
    from spendstream.worker.schema import migrate as apply_migrations

    settings = settings_or_exit(config)
    client = connect(settings.clickhouse.dsn, settings.clickhouse.database)
    applied = apply_migrations(client, settings.clickhouse.cluster)
    typer.echo(f"applied migrations: {applied}" if applied else "schema is up to date")


def sql(
    query: Annotated[str, typer.Argument(help="SQL to run; '-' reads it from stdin")],
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Run a query against the configured ClickHouse and print the result."""
    from spendstream.sinks.access import DirectReader, worker_api

    reached = worker_or_none(config)
    if reached is not None:
        api: ApiClient | None = reached[0]
    else:
        settings = settings_or_exit(config)
        api = worker_api(settings)
    text = sys.stdin.read() if query == "-" else query
    if api is None:
        emit(DirectReader(settings).query(text), output)
        return
    try:
        result = query_worker(api, text)
    except QueryRefused as refused:  # e.g. the worker's SQL guard: say what, no traceback
        fail(refused.detail, label=refused.label)
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
    currency: Annotated[
        str | None,
        typer.Option(
            help="also show cost in this currency, at each day's rate (default: [currency] display)"
        ),
    ] = None,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Spend by tag over a period (from the deduplicated ledger)."""
    from spendstream.sinks.access import DirectReader, QueryResult, worker_api

    reached = worker_or_none(config)
    if reached is not None:  # the worker owns the data: ask its API (same query, server side)
        asked = ReportAsked(
            by or ["team"], parse_moment(since), parse_moment(until), unpriced, limit
        )
        print_worker_report(reached, asked, currency, output)
        return
    settings = settings_or_exit(config)
    start, end = parse_moment(since), parse_moment(until)
    groups = by or ["team"]
    asked = ReportAsked(groups, start, end, unpriced, limit)
    shown_in = (currency or settings.currency.display or "USD").upper()
    found_api = worker_api(settings)
    if found_api is not None:
        emit(report_from_worker(found_api, asked, shown_in), output, asked.title)
        return
    if shown_in != "USD" and not unpriced:
        from spendstream.currency.report import spend_in_currency  # only when converting here
        from spendstream.currency.store import currency_table

        reader = DirectReader(settings)
        table = currency_table(reader, settings.currency, shown_in)
        converted = spend_in_currency(reader, table, groups, start, end, limit + 1)
        emit(cut_report(converted, limit), output, asked.title)
        return
    try:
        if unpriced:
            query, params = unpriced_report_sql(start, end)
        else:
            query, params = spend_report_sql(groups, start, end, limit + 1)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    result = DirectReader(settings).query(query, params)
    if not unpriced:
        result = cut_report(QueryResult(report_columns(groups), result.rows), limit)
    emit(result, output, asked.title)


def send(
    source: Annotated[
        str | None,
        typer.Argument(help="JSON-lines file of usage events; '-' or nothing reads stdin"),
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
    with ExitStack() as stack:
        lines: TextIO = sys.stdin
        if source not in (None, "-"):
            try:
                lines = stack.enter_context(Path(source).open())
            except OSError as exc:
                raise typer.BadParameter(f"cannot read {source}: {exc.strerror}") from None
        with Recorder.from_settings(settings) as recorder:
            report = send_json_lines(recorder, lines)
            delivered = recorder.flush(timeout=flush_timeout)
    for error in report.errors:
        say(f"line {error.line}:", error.reason)
    typer.echo(f"accepted {report.accepted}, rejected {len(report.errors)}")
    if report.stamped:
        say(
            f"{report.stamped} line(s) had neither event_id nor event_time:",
            "each got a new id and the current time (sending them again counts them again)",
            "yellow",
        )
    if not delivered:
        spool = settings.producer.spool_dir
        say("not all delivered yet;", f"the rest waits in {spool}", "yellow")
        raise typer.Exit(3)
    if report.errors:
        raise typer.Exit(1)
