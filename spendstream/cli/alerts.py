"""``spendstream budgets …`` and ``spendstream alerts …`` (typer sub-apps the main CLI mounts).

While a worker owns the chDB directory, reads and silences go through its API
(``/api/v1/budgets/status``, ``/api/v1/alerts``, ``/api/v1/silences``); otherwise they read and
write ClickHouse directly. Both paths run the same functions (:mod:`spendstream.alerts.status`).
"""

from __future__ import annotations

import getpass
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Annotated, Any

import typer

from spendstream.alerts.config import Alerting, load_alerting
from spendstream.alerts.silences import SilenceRequest, Subjects, apply_silence
from spendstream.alerts.status import alert_history_sql, budget_status
from spendstream.cli.common import (
    ConfigOption,
    OutputFormat,
    OutputOption,
    emit,
    fail,
    parse_moment,
    settings_or_exit,
)
from spendstream.config import ConfigError, Settings
from spendstream.durations import format_duration, parse_duration
from spendstream.matching import scope_text
from spendstream.money import CENT, format_money
from spendstream.notifications.outbox import Outbox
from spendstream.periods import format_time, utc_now
from spendstream.quotas.config import load_quotas
from spendstream.sinks.access import (
    ApiError,
    DirectReader,
    QueryResult,
    instant,
    wire_time,
    worker_api,
)
from spendstream.sinks.client import connect
from spendstream.worker.schema import migrate

budgets_app = typer.Typer(
    help="Budgets: definitions and spend against them.", no_args_is_help=True, rich_markup_mode=None
)
alerts_app = typer.Typer(
    help="Budget alerts: history and silences.", no_args_is_help=True, rich_markup_mode=None
)


def load(config: str | None) -> tuple[Settings, Alerting]:
    settings = settings_or_exit(config)
    try:
        return settings, load_alerting(settings, config)
    except ConfigError as exc:
        fail(str(exc), 2)


@budgets_app.command("list")
def list_budgets(config: ConfigOption = None, output: OutputOption = OutputFormat.table) -> None:
    """The configured budgets."""
    _, alerting = load(config)
    columns = ["budget", "scope", "period", "limit", "thresholds", "forecast", "spike"]
    columns += ["reminder", "channels", "owner"]
    rows: list[list[Any]] = [
        [
            b.name,
            scope_text(b.scope_filters),
            f"{b.period} ({b.timezone})",
            format_money(b.limit, b.currency or "USD"),
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
def status(config: ConfigOption = None, output: OutputOption = OutputFormat.table) -> None:
    """Spend vs limit for the current period of every budget, with the forecast."""
    settings, alerting = load(config)
    now = utc_now()
    api = worker_api(settings)
    if api is not None:
        result = api.table("/budgets/status")
    else:
        result = budget_status(DirectReader(settings), alerting, alerting.budgets, now)
    rows: list[list[Any]] = []
    for row in result.rows:
        name, period, spend, limit, percent, forecast, overrun, firing, *rest = row
        currency, rate = rest[:2] if rest else ("USD", "")  # a worker from before currencies
        money = partial(format_money, currency=currency)
        rows.append(
            [
                name,
                period,
                money(Decimal(str(spend))),
                money(Decimal(str(limit))),
                f"{Decimal(str(percent)).quantize(CENT)}%",
                money(Decimal(str(forecast))) if forecast is not None else "",
                format_time(instant(overrun)) if overrun else "",
                firing,
                currency,
                rate,
            ]
        )
    columns = [*result.columns[:8], "currency", "rate"]
    emit(QueryResult(columns, rows), output, f"Budget status at {format_time(now)}")


@alerts_app.command("list")
def list_alerts(
    since: Annotated[str, typer.Option(help="ISO time or 30m/24h/7d ago")] = "7d",
    budget: Annotated[str | None, typer.Option(help="only this budget")] = None,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Alert history: what fired, its state, and where it was delivered (attempts)."""
    settings, _ = load(config)
    moment = parse_moment(since)
    api = worker_api(settings)
    if api is not None:
        wanted = {"since": wire_time(moment), **({"budget": budget} if budget else {})}
        result = api.table("/alerts", wanted)
    else:
        sql, params = alert_history_sql(moment, [budget] if budget else None)
        result = DirectReader(settings).query(sql, params)
    if output is OutputFormat.table and not result.rows:  # a sentence, not an empty table
        subject = f" for {budget!r}" if budget else ""
        typer.echo(f"No alerts{subject} since {format_time(moment)}.")
        return
    if output is OutputFormat.table:  # people read minutes and a percent sign; CSV/JSON stay exact
        result = QueryResult(result.columns, [readable_alert(r) for r in result.records()])
    emit(result, output, "Alerts")


def readable_alert(record: dict[str, Any]) -> list[Any]:
    row = dict(record)
    if row.get("created") is not None:
        row["created"] = format_time(instant(row["created"]).replace(tzinfo=None))
    if row.get("percent") is not None:
        row["percent"] = f"{Decimal(str(row['percent'])).quantize(CENT)}%"
    return list(row.values())


def _silence(config: str | None, request: SilenceRequest) -> None:
    settings, alerting = load(config)
    api = worker_api(settings)
    if api is not None:  # the API records the token's name as the author
        # The worker's budgets are the ones that alert: it judges the name (a 404 naming the
        # budgets it knows), a usage error (exit 2) as without a worker; its other refusals
        # map to exit codes as every command's (cli/errors.py).
        body = request.model_dump(mode="json", exclude={"by"})
        if request.action == "unsilence":
            body.pop("duration")
        try:
            until = api.post("/silences", body)["until"]
        except ApiError as exc:
            if exc.status != 404:
                raise
            fail(exc.detail, 2)
    else:
        try:
            quotas = [q.name for q in load_quotas(settings, config).quotas]
        except ConfigError as exc:
            fail(str(exc), 2)
        client = connect(settings.clickhouse.dsn, settings.clickhouse.database)
        try:  # closed before exiting: chDB holds one directory per process while it is open
            migrate(client, settings.clickhouse.cluster)
            subjects = Subjects.of(alerting, quotas)
            until = apply_silence(Outbox(client), subjects, request, utc_now()).until.isoformat()
        except KeyError as exc:
            fail(str(exc.args[0]), 2)
        finally:
            client.close()
    verb = "silenced until" if request.action == "silence" else "unsilenced at"
    typer.echo(f"{request.budget}: {verb} {until}")


@alerts_app.command("silence")
def silence(
    budget: Annotated[str, typer.Argument(help="a budget, a quota or a notification's subject")],
    duration: Annotated[str, typer.Option("--for", help="how long, e.g. 30m, 2h, 1d")] = "1h",
    reason: Annotated[str, typer.Option(help="why (kept in the history)")] = "",
    config: ConfigOption = None,
) -> None:
    """Silence a budget's, a quota's or any notification subject's notifications for a while
    (they are still recorded, as silenced)."""
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
    budget: Annotated[str, typer.Argument(help="the silenced subject")],
    config: ConfigOption = None,
) -> None:
    """End a silence now."""
    _silence(config, SilenceRequest(action="unsilence", budget=budget, by=getpass.getuser()))
