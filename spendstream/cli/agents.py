"""``spendstream runs …`` and ``spendstream customers …`` (docs/agents.md)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from spendstream.cli.common import (
    ConfigOption,
    OutputFormat,
    OutputOption,
    emit_rows,
    fail,
    parse_moment,
    reading,
    settings_or_exit,
)
from spendstream.moments import check_period
from spendstream.sinks.access import QueryResult, Reader

if TYPE_CHECKING:
    from spendstream.sinks.agent_views import Scope

runs_app = typer.Typer(help="Agent runs: cost per run, the costliest runs, one run's steps.")
customers_app = typer.Typer(help="Cost per customer, per feature, trend; revenue and margin.")
EVERY_TEAM: Scope = ("1", {})  # the CLI reads the ledger directly: every team
Since = Annotated[str, typer.Option(help="start: ISO time or 24h/7d ago")]
Until = Annotated[str, typer.Option(help="end (exclusive)")]


Found = TypeVar("Found")


def _show(result: QueryResult, output: OutputFormat, title: str) -> None:
    emit_rows(result.columns, result.rows, output, title=title)


def _read(
    config: str | None, since: str, until: str, read: Callable[[Reader, datetime, datetime], Found]
) -> Found:
    """``read`` over ``[since, until)`` on the configured ledger (every team); an empty or
    reversed period is a usage error (exit 2), as the API's 400."""
    start, end = parse_moment(since), parse_moment(until)
    try:
        check_period(start, end)
    except ValueError as exc:
        fail(f"--since/--until: {exc}", 2)
    with reading(settings_or_exit(config)) as reader:
        return read(reader, start, end)


def _windowed(
    app: typer.Typer,
    name: str,
    since_default: str,
    title: str,
    read: Callable[[Reader, datetime, datetime], QueryResult],
) -> None:
    """Register ``name``: ``read`` over ``--since``/``--until``, shown as a table (its help is
    ``read``'s docstring)."""

    def command(
        since: Since = since_default,
        until: Until = "now",
        config: ConfigOption = None,
        output: OutputOption = OutputFormat.table,
    ) -> None:
        _show(_read(config, since, until, read), output, title)

    command.__doc__ = read.__doc__
    app.command(name)(command)


def _runs_by_agent(reader: Reader, since: datetime, until: datetime) -> QueryResult:
    """Per agent: runs, cost per run (p50, p95, max), steps per run, model vs tool cost."""
    from spendstream.sinks.agent_views import runs_by_agent

    return runs_by_agent(reader, since, until, EVERY_TEAM)


_windowed(runs_app, "agents", "7d", "Cost per run, per agent", _runs_by_agent)


@runs_app.command("top")
def runs_top(
    since: Since = "7d",
    until: Until = "now",
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    agent: Annotated[str | None, typer.Option(help="only this agent's runs")] = None,
    customer: Annotated[str | None, typer.Option(help="only this customer's runs")] = None,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """The most expensive runs."""
    from spendstream.sinks.agent_views import top_runs

    result = _read(
        config,
        since,
        until,
        lambda r, lo, hi: top_runs(r, lo, hi, EVERY_TEAM, limit, agent, customer),
    )
    _show(result, output, "Most expensive runs")


@runs_app.command("show")
def runs_show(
    run_id: str, config: ConfigOption = None, output: OutputOption = OutputFormat.table
) -> None:
    """One run step by step: model or tool, tokens, cost, time."""
    from spendstream.sinks.agent_views import run_steps

    with reading(settings_or_exit(config)) as reader:
        result = run_steps(reader, run_id, EVERY_TEAM)
    if not result.rows:
        fail(f"no run {run_id!r} in the ledger", 2)
    _show(result, output, f"Run {run_id}")


@runs_app.command("sessions")
def runs_sessions(
    since: Since = "7d",
    until: Until = "now",
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Cost per session (conversation), most expensive first."""
    from spendstream.sinks.agent_views import sessions

    result = _read(config, since, until, lambda r, lo, hi: sessions(r, lo, hi, EVERY_TEAM, limit))
    _show(result, output, "Cost per session")


@customers_app.command("spend")
def customers_spend(
    since: Since = "30d",
    until: Until = "now",
    by_feature: Annotated[bool, typer.Option("--by-feature", help="per feature too")] = False,
    granularity: Annotated[str, typer.Option(help="none, day, week or month")] = "none",
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Cost per customer ("(none)": calls without one), optionally per feature and period."""
    from spendstream.sinks.agent_views import spend_by_customer

    try:
        result = _read(
            config,
            since,
            until,
            lambda r, lo, hi: spend_by_customer(r, lo, hi, EVERY_TEAM, by_feature, granularity),
        )
    except ValueError as exc:
        fail(str(exc), 2)
    if output is OutputFormat.table:  # CSV and JSON keep the empty value
        result = _none_labelled(result, "customer")
    _show(result, output, "Cost per customer")


def _none_labelled(result: QueryResult, column: str) -> QueryResult:
    """``column``'s empty value shown as "(none)", as the dashboard's pages label it."""
    if column not in result.columns:  # no rows: a read may answer without columns
        return result
    at = result.columns.index(column)
    rows = [[*row[:at], row[at] or "(none)", *row[at + 1 :]] for row in result.rows]
    return QueryResult(result.columns, rows)


MARGIN_COLUMNS = [
    "customer",
    "period_start",
    "period_end",
    "revenue",
    "cost",
    "margin",
    "margin_pct",
    "at_loss",
]


def _margins(reader: Reader, since: datetime, until: datetime) -> QueryResult:
    """Gross margin per customer and revenue period; customers served at a loss flagged."""
    from spendstream.sinks.agent_views import margins

    found = margins(reader, since.date(), until.date())
    return QueryResult(MARGIN_COLUMNS, [[m.as_dict()[c] for c in MARGIN_COLUMNS] for m in found])


_windowed(customers_app, "margin", "90d", "Gross margin per customer", _margins)


@customers_app.command("import-revenue")
def customers_import_revenue(
    csv_file: Annotated[
        Path, typer.Argument(help="customer,period_start,period_end,amount[,note]")
    ],
    config: ConfigOption = None,
) -> None:
    """Import revenue per customer and period (USD; the latest import of a period wins)."""
    from spendstream.sinks.access import ApiError, worker_api
    from spendstream.sinks.client import connect
    from spendstream.sinks.revenue import RevenueError, parse_revenue_csv, store_revenue

    try:
        rows = parse_revenue_csv(csv_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RevenueError) as exc:
        fail(f"{csv_file}: {exc}", 2)
    settings = settings_or_exit(config)
    api = worker_api(settings)
    if api is not None:  # the worker owns the chDB directory: its API stores them (admin)
        try:
            stored = api.post("/revenue", [row.model_dump(mode="json") for row in rows])["stored"]
        except ApiError as exc:
            fail(f"worker refused: {exc}")
        typer.echo(f"stored {stored} revenue rows")
        return
    client = connect(settings.clickhouse.dsn, settings.clickhouse.database)
    try:
        typer.echo(f"stored {store_revenue(client, rows)} revenue rows")
    finally:
        client.close()
