"""``spendstream budgets …`` and ``spendstream alerts …`` (typer sub-apps the main CLI mounts).

Reads go through :func:`spendstream.sinks.access.open_reader` (the worker's ``/sql`` while a
worker owns the chDB directory). Silences are POSTed to the running worker's
``/alerts/silences`` page, or written directly to ClickHouse when no worker runs.
"""

from __future__ import annotations

import getpass
from datetime import timedelta
from typing import Annotated, Any

import httpx
import typer

from spendstream.alerts.config import Alerting, load_alerting
from spendstream.alerts.figures import compute_figures, time_sql
from spendstream.alerts.message import format_time, format_usd
from spendstream.alerts.periods import format_duration, parse_duration, period_label
from spendstream.alerts.records import utc_now
from spendstream.alerts.scope import scope_text
from spendstream.alerts.silences import SilenceRequest, apply_silence
from spendstream.alerts.store import AlertStore, in_list
from spendstream.cli.common import ConfigOption, err_console, parse_moment, settings_or_exit
from spendstream.cli.data import OutputOption, emit
from spendstream.config import ConfigError, Settings
from spendstream.sinks.access import QueryResult, open_reader, running_worker_url
from spendstream.sinks.client import connect
from spendstream.worker.schema import migrate

budgets_app = typer.Typer(help="Budgets: definitions and spend against them.", no_args_is_help=True)
alerts_app = typer.Typer(help="Budget alerts: history and silences.", no_args_is_help=True)


def load(config: str | None) -> tuple[Settings, Alerting]:
    settings = settings_or_exit(config)
    try:
        return settings, load_alerting(settings, config)
    except ConfigError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


@budgets_app.command("list")
def list_budgets(config: ConfigOption = None, output: OutputOption = "table") -> None:
    """The configured budgets."""
    _, alerting = load(config)
    columns = ["budget", "scope", "period", "limit", "thresholds", "forecast", "spike"]
    columns += ["reminder", "channels", "owner"]
    rows: list[list[Any]] = [
        [
            b.name,
            scope_text(b.scope_filters),
            f"{b.period} ({b.timezone})",
            format_usd(b.limit),
            ", ".join(f"{t}%" for t in b.thresholds),
            "on" if b.forecast else "off",
            "on" if b.spike else "off",
            format_duration(b.reminder) if b.reminder else "",
            ", ".join(b.channels),
            b.owner,
        ]
        for b in alerting.budgets
    ]
    emit(QueryResult(columns, rows), output, f"Budgets ({alerting.source})")


@budgets_app.command("status")
def status(config: ConfigOption = None, output: OutputOption = "table") -> None:
    """Spend vs limit for the current period of every budget, with the forecast."""
    settings, alerting = load(config)
    now = utc_now()
    reader = open_reader(settings)
    figures = compute_figures(reader, alerting.budgets, alerting.alerts, now)
    firing = _firing(reader, [b.name for b in alerting.budgets])
    columns = ["budget", "period", "spend", "limit", "percent", "forecast", "overrun", "alerts"]
    rows: list[list[Any]] = []
    for f in figures:
        forecast, overrun = f.forecast, f.overrun_at
        rows.append(
            [
                f.budget.name,
                period_label(f.budget.period, f.budget.timezone, f.windows.period_start),
                format_usd(f.spend),
                format_usd(f.budget.limit),
                f"{f.percent}%",
                format_usd(forecast) if forecast is not None else "",
                format_time(overrun) if overrun else "",
                firing.get(f.budget.name, ""),
            ]
        )
    emit(QueryResult(columns, rows), output, f"Budget status at {format_time(now)}")


def _firing(reader: Any, names: list[str]) -> dict[str, str]:
    if not names:
        return {}
    try:
        result = reader.query(
            "SELECT budget, arrayStringConcat(groupArray(if(kind = 'threshold', "
            "concat(toString(threshold), '%'), kind)), ', ') FROM alerts FINAL "
            f"WHERE state = 'firing' AND budget IN {in_list(names)} GROUP BY budget"
        )
    except Exception:  # no alert table yet (never migrated): nothing is firing
        return {}
    return {str(row[0]): str(row[1]) for row in result.rows}


@alerts_app.command("list")
def list_alerts(
    since: Annotated[str, typer.Option(help="ISO time or 30m/24h/7d ago")] = "7d",
    budget: Annotated[str | None, typer.Option(help="only this budget")] = None,
    config: ConfigOption = None,
    output: OutputOption = "table",
) -> None:
    """Alert history: what fired, its state, and where it was delivered (attempts)."""
    settings, _ = load(config)
    where = f"a.created_at >= {time_sql(parse_moment(since))}"
    if budget:
        where += f" AND a.budget IN {in_list([budget])}"
    query = (
        "SELECT a.created_at AS created, a.budget, if(a.kind = 'threshold', "
        "concat(toString(a.threshold), '%'), a.kind) AS alert, a.state, a.spend, a.percent, "
        "d.deliveries, a.note FROM alerts AS a FINAL LEFT JOIN (SELECT alert_id, "
        "arrayStringConcat(groupArray(concat(channel, ':', status, ' x', toString(attempts), "
        "if(last_error = '' OR status = 'delivered', '', concat(' (', left(last_error, 80), ')'))"
        ")), '; ') AS deliveries FROM alert_deliveries FINAL GROUP BY alert_id) AS d "
        f"ON a.alert_id = d.alert_id WHERE {where} ORDER BY a.created_at"
    )
    emit(open_reader(settings).query(query), output, "Alerts")


def _silence(config: str | None, request: SilenceRequest) -> None:
    settings, alerting = load(config)
    try:
        alerting.budget(request.budget)
    except KeyError as exc:
        err_console.print(f"[red]error:[/red] {exc.args[0]}")
        raise typer.Exit(2) from None
    url = running_worker_url(settings)
    if url:
        response = httpx.post(
            f"{url}/alerts/silences", json=request.model_dump(mode="json"), timeout=30
        )
        if response.status_code != 200:
            err_console.print(f"[red]error:[/red] worker refused: {response.text}")
            raise typer.Exit(1)
        until = response.json()["until"]
    else:
        client = connect(settings.clickhouse.dsn, settings.clickhouse.database)
        migrate(client, settings.clickhouse.cluster)
        until = apply_silence(AlertStore(client), alerting, request, utc_now()).until.isoformat()
    verb = "silenced until" if request.action == "silence" else "unsilenced at"
    typer.echo(f"{request.budget}: {verb} {until}")


@alerts_app.command("silence")
def silence(
    budget: Annotated[str, typer.Argument(help="budget name")],
    duration: Annotated[str, typer.Option("--for", help="how long, e.g. 30m, 2h, 1d")] = "1h",
    reason: Annotated[str, typer.Option(help="why (kept in the history)")] = "",
    config: ConfigOption = None,
) -> None:
    """Silence a budget's alerts for a while (they are still recorded, as silenced)."""
    try:
        length = parse_duration(duration)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if length <= timedelta(0):
        raise typer.BadParameter("--for must be positive")
    by = getpass.getuser()
    _silence(config, SilenceRequest(budget=budget, duration=length, reason=reason, by=by))


@alerts_app.command("unsilence")
def unsilence(
    budget: Annotated[str, typer.Argument(help="budget name")], config: ConfigOption = None
) -> None:
    """End a budget's silence now."""
    _silence(config, SilenceRequest(action="unsilence", budget=budget, by=getpass.getuser()))
