"""``spendstream quotas list|status|override|reset|overrides`` (a typer sub-app).

Reads go through :func:`spendstream.sinks.access.open_reader` (the worker's ``/sql`` while a
worker owns the chDB directory). Overrides and resets are POSTed to the running worker's
``/quotas/overrides`` page (which re-decides the key at once), or written directly to ClickHouse
when no worker runs (the evaluating worker applies them on its next pass).
"""

from __future__ import annotations

import contextlib
import getpass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer

from spendstream.cli.common import ConfigOption, OutputFormat, fail, settings_or_exit
from spendstream.cli.data import OutputOption, emit
from spendstream.config import ConfigError, Settings
from spendstream.durations import parse_duration
from spendstream.errors import UnavailableError
from spendstream.matching import scope_text
from spendstream.periods import format_time, utc_now
from spendstream.quotas.config import Quotas, load_quotas
from spendstream.quotas.engine import amount_text
from spendstream.quotas.overrides import OverrideRequest, apply_override
from spendstream.quotas.schema import OVERRIDE_COLUMNS
from spendstream.quotas.store import QuotaStore
from spendstream.sinks.access import ApiError, QueryResult, instant, open_reader, worker_api
from spendstream.sinks.client import connect
from spendstream.sinks.errors import QueryError
from spendstream.sinks.params import Params, moment, string, strings
from spendstream.worker.schema import migrate

quotas_app = typer.Typer(
    help="Quotas and rate limits: definitions, decisions, overrides.", no_args_is_help=True
)


# The columns of `quotas status`, as the worker's GET /quotas names them ("allowed" is shown as
# the decision).
STATUS_SHOWN = (
    "quota", "key", "allowed", "unit", "used", "limit", "remaining", "resets_at", "as_of", "reason",
)  # fmt: skip


def load(config: str | None) -> tuple[Settings, Quotas]:
    settings = settings_or_exit(config)
    try:
        return settings, load_quotas(settings, config)
    except ConfigError as exc:
        fail(f"{exc}", 2)


@quotas_app.command("list")
def list_quotas(config: ConfigOption = None, output: OutputOption = OutputFormat.table) -> None:
    """The configured quotas (and budgets with block_at)."""
    settings, quotas = load(config)
    api = worker_api(settings) if not quotas.quotas else None
    if api is not None:  # this shell has none: say what the running worker enforces
        with contextlib.suppress(ApiError):
            names = [q["quota"] for q in api.get("/quotas")["quotas"]]
            if names:
                typer.echo(
                    f"none configured here; the running worker enforces {', '.join(names)} "
                    "(its configuration): spendstream quotas status"
                )
    columns = ["quota", "scope", "group_by", "limit", "per", "action", "when_stale", "channels"]
    rows: list[list[Any]] = [
        [
            q.name,
            scope_text(q.scope_filters),
            ", ".join(q.group_by),
            amount_text(q.unit, q.amount),
            f"{q.per} ({q.timezone})",
            q.action,
            q.when_stale,
            ", ".join(q.channels),
        ]
        for q in quotas.quotas
    ]
    emit(QueryResult(columns, rows), output, f"Quotas ({quotas.source})")


@quotas_app.command("status")
def status(
    key: Annotated[
        str | None,
        typer.Option(help='only this key, e.g. user=alice ("user=": calls without a user)'),
    ] = None,
    quota: Annotated[str | None, typer.Option(help="only this quota")] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="every key (default: blocked keys and the nearest)")
    ] = False,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """The current decision per quota key (from the worker's stored decisions): while a worker
    runs, for the quotas *it* enforces, whatever this shell's configuration says.

    As a table, it answers "who is blocked, who is next": blocked keys and the keys nearest
    their limit, under a one-line count; ``--all`` (and csv/json) list every key."""
    settings, quotas = load(config)
    title = f"Quota decisions at {format_time(utc_now())}"
    api = worker_api(settings)
    if api is not None:
        try:
            body = api.get("/quotas")
        except ApiError as exc:
            fail(str(exc))
        rows = [
            [row[name] for name in STATUS_SHOWN]
            for row in QueryResult(**body["decisions"]).records()
            if (quota is None or row["quota"] == quota) and (key is None or row["key"] == key)
        ]
        for row in rows:
            row[2] = "allowed" if row[2] else "BLOCKED"
        result = QueryResult(["quota", "key", "decision", *STATUS_SHOWN[3:]], rows)
        emit_status(result, output, title, show_all)
        return
    params: Params = {}
    names = [q.name for q in quotas.quotas]
    where = [f"quota IN {strings(params, names)}"] if quotas.quotas else ["0"]
    if quota:
        where.append(f"quota = {string(params, quota)}")
    if key is not None:
        where.append(f"key = {string(params, key)}")
    query = (
        "SELECT quota, key, if(allowed, 'allowed', 'BLOCKED') AS decision, unit, used, limit, "
        "remaining, resets_at, as_of, reason FROM quota_decisions FINAL "
        f"WHERE {' AND '.join(where)} ORDER BY quota, key"
    )
    try:
        result = open_reader(settings).query(query, params)
    except (QueryError, ApiError) as exc:  # no decision table yet
        if isinstance(exc, UnavailableError):
            raise  # an outage: exit 3 (spendstream.cli.errors)
        fail(f"no decisions to show ({str(exc)[:200]})", 1)
    emit_status(result, output, title, show_all)


NEAREST_SHOWN = 5


def emit_status(result: QueryResult, output: OutputFormat, title: str, show_all: bool) -> None:
    """The decisions, cut for a person to blocked keys plus the nearest to their limits, with
    amounts in their unit (``$5.06``, ``12000 tokens``); CSV and JSON keep every key and digit."""
    if output is not OutputFormat.table:
        emit(result, output, title)
        return
    records = result.records()
    shown = records
    if not show_all and len(records) > NEAREST_SHOWN:
        blocked = [r for r in records if r["decision"] == "BLOCKED"]
        nearest = sorted((r for r in records if r["decision"] != "BLOCKED"), key=used_share)
        shown = blocked + nearest[::-1][:NEAREST_SHOWN]
        typer.echo(
            f"{len(records)} keys: {len(blocked)} blocked; below, the blocked and the "
            f"{min(NEAREST_SHOWN, len(nearest))} nearest their limit (--all for every key)"
        )
    emit(QueryResult(result.columns, [readable(r) for r in shown]), output, title)


def used_share(record: dict[str, Any]) -> Decimal:
    limit = Decimal(str(record["limit"]))
    return Decimal(str(record["used"])) / limit if limit else Decimal(0)


def readable(record: dict[str, Any]) -> list[Any]:
    """A decision's row as a person reads it: amounts in the quota's unit, times to the minute."""
    row = dict(record)
    for name in ("used", "limit", "remaining"):
        if row[name] is not None:
            row[name] = amount_text(str(row["unit"]), Decimal(str(row[name])))
    for name in ("resets_at", "as_of"):
        if isinstance(row[name], str | datetime):
            row[name] = format_time(instant(row[name]).replace(tzinfo=None))
    return list(row.values())


@quotas_app.command("overrides")
def overrides(
    active: Annotated[bool, typer.Option(help="only those still in effect")] = False,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """The audit log of overrides and resets: who, when, why, until when."""
    settings, _ = load(config)
    params: Params = {}
    where = f"until > {moment(params, utc_now())}" if active else "1"
    query = (
        f"SELECT {', '.join(OVERRIDE_COLUMNS)} FROM quota_overrides WHERE {where} "
        "ORDER BY created_at"
    )
    emit(open_reader(settings).query(query, params), output, "Quota overrides")


def _send(config: str | None, request: OverrideRequest) -> dict[str, Any]:
    settings, quotas = load(config)
    try:
        quotas.quota(request.quota)
    except KeyError as exc:
        fail(f"{exc.args[0]}", 2)
    api = worker_api(settings)
    try:
        if api is not None:
            try:
                return dict(api.post("/quotas/overrides", request.model_dump(mode="json")))
            except ApiError as exc:
                fail(f"worker refused: {exc}", 1)
        client = connect(settings.clickhouse.dsn, settings.clickhouse.database)
        migrate(client)
        done = apply_override(QuotaStore(client), quotas, request, utc_now())
    except ValueError as exc:
        fail(f"{exc}", 2)
    return {"override_id": done.override_id, "until": done.until.isoformat()}


KeyArgument = Annotated[str, typer.Argument(help='the quota key, e.g. user=alice ("-": none)')]
ReasonOption = Annotated[str, typer.Option(help="why (kept in the audit log)")]


@quotas_app.command("override")
def override(
    name: Annotated[str, typer.Argument(help="quota name")],
    key: KeyArgument,
    limit: Annotated[str, typer.Option(help="the limit meanwhile, in the quota's unit")],
    duration: Annotated[str, typer.Option("--for", help="how long, e.g. 30m, 2h, 1d")] = "1h",
    reason: ReasonOption = "",
    config: ConfigOption = None,
) -> None:
    """Give one quota key another limit for a while (audited; expires by itself)."""
    try:
        amount = Decimal(limit)
        length = parse_duration(duration)
    except (InvalidOperation, ValueError) as exc:
        raise typer.BadParameter(f"--limit/--for: {exc}") from None
    request = OverrideRequest(
        quota=name, key=key, limit=amount, duration=length, reason=reason, by=getpass.getuser()
    )
    done = _send(config, request)
    typer.echo(f"{name} {key}: limit {amount} until {done['until']} ({done['override_id']})")


@quotas_app.command("reset")
def reset(
    name: Annotated[str, typer.Argument(help="quota name")],
    key: KeyArgument,
    reason: ReasonOption = "",
    config: ConfigOption = None,
) -> None:
    """Forgive one key's usage so far this period (audited; ends with the period)."""
    request = OverrideRequest(
        action="reset", quota=name, key=key, reason=reason, by=getpass.getuser()
    )
    done = _send(config, request)
    typer.echo(f"{name} {key}: usage reset for this period (until {done['until']})")
