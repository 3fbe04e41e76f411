"""Commands over the ledger: audits (``audit``), FOCUS export (``export focus``), ``reprice``.

Reads go through :func:`~spendstream.sinks.access.open_reader` so they work while a worker holds
the chDB directory; ``reprice`` writes and therefore needs the directory (or an HTTP server).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

from spendstream.cli.common import (
    ConfigOption,
    OutputFormat,
    OutputOption,
    SinceOption,
    UntilOption,
    emit,
    emit_rows,
    err_console,
    fail,
    parse_moment,
    reading,
    refuse_beside_worker,
    settings_or_exit,
)
from spendstream.config import ConfigError
from spendstream.money import decimal_text
from spendstream.pricing import load_pricer
from spendstream.sinks.access import (
    wire_time,
    worker_api,
)
from spendstream.sinks.audits import AUDITS, DEFAULT_REQUIRED_TAGS, get_audit, render_sql
from spendstream.sinks.client import connect
from spendstream.sinks.focus import ledger_total
from spendstream.sinks.focus_columns import DEFAULT_VERSION, VERSIONS
from spendstream.sinks.focus_export import export_focus
from spendstream.sinks.rerating import RepriceResult
from spendstream.sinks.rerating import reprice as reprice_period
from spendstream.worker.schema import migrate

export_app = typer.Typer(
    help="Export the ledger in standard formats.", no_args_is_help=True, rich_markup_mode=None
)
audit_app = typer.Typer(
    help="Documented audit queries over the ledger.", no_args_is_help=True, rich_markup_mode=None
)

AuditName = Annotated[str, typer.Argument(help="audit name (see `spendstream audit list`)")]
RequireOption = Annotated[
    list[str] | None,
    typer.Option("--require", "-r", help="required tag (repeatable; default: team, app)"),
]


@audit_app.command("list")
def audit_list(output: OutputOption = OutputFormat.table) -> None:
    """List the audit queries with what each returns."""
    emit_rows(
        ["name", "description"],
        [[query.name, query.description] for query in AUDITS.values()],
        output,
        title="Audit queries (spendstream audit run NAME)",
    )


def _audit_sql(
    name: str, since: str, until: str, require: list[str] | None
) -> tuple[str, dict[str, Any]]:
    try:
        query = get_audit(name)
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0])) from None
    required = require or DEFAULT_REQUIRED_TAGS
    params = query.parameters(parse_moment(since), parse_moment(until), required)
    return query.sql_for(required), params


@audit_app.command("run")
def audit_run(
    name: AuditName,
    since: SinceOption = "30d",
    until: UntilOption = "now",
    require: RequireOption = None,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Run one audit query over [since, until) and print the result."""
    sql, params = _audit_sql(name, since, until, require)
    settings = settings_or_exit(config)
    api = worker_api(settings)
    # Failures are mapped to exit codes by class (spendstream.cli.errors): refused 1, outage 3.
    if api is not None:  # the worker's API runs the same audit (scoped to the token)
        wanted = {"since": wire_time(params["since"]), "until": wire_time(params["until"])}
        result = api.table(f"/audits/{name}", {**wanted, "require": list(require or [])})
    else:
        with reading(settings) as reader:
            result = reader.query(sql, params)
    emit(result, output, title=f"{name}  {since} → {until}")


@audit_app.command("show")
def audit_show(
    name: AuditName,
    since: SinceOption = "30d",
    until: UntilOption = "now",
    require: RequireOption = None,
) -> None:
    """Print an audit's SQL with literal values, e.g. for `spendstream sql -`."""
    sql, params = _audit_sql(name, since, until, require)
    typer.echo(render_sql(sql, params))


@export_app.command("focus")
def export_focus_command(
    month: Annotated[str, typer.Option(help="calendar month, YYYY-MM (UTC)")],
    out: Annotated[Path, typer.Option(help="file to write")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv or parquet")] = "csv",
    invoiced: Annotated[
        bool,
        typer.Option(
            "--invoiced", help="BilledCost from loaded provider reports where there are some"
        ),
    ] = False,
    focus_version: Annotated[
        str,
        typer.Option("--focus-version", help=f"FOCUS version: {', '.join(VERSIONS)}"),
    ] = DEFAULT_VERSION,
    currency: Annotated[
        str,
        typer.Option(
            help="BillingCurrency: costs and prices converted from USD at each day's rate "
            "(spendstream rates), the rate and its date beside"
        ),
    ] = "USD",
    config: ConfigOption = None,
) -> None:
    """Write a month of the ledger as FOCUS rows (one per day x SKU x tag set x token type)."""
    from spendstream.currency.focus import FocusInCurrency
    from spendstream.currency.store import currency_table
    from spendstream.reconcile.billed import invoiced_amounts

    if fmt not in ("csv", "parquet"):
        raise typer.BadParameter(f"unknown format {fmt!r}: use csv or parquet")
    if focus_version not in VERSIONS:
        raise typer.BadParameter(
            f"unknown FOCUS version {focus_version!r}: use {', '.join(VERSIONS)}"
        )
    if not out.parent.is_dir():
        fail(f"--out {out}: no directory {out.parent}: create it or write elsewhere", 2)
    settings = settings_or_exit(config)
    code = currency.strip().upper()
    cutoff = export_cutoff()
    try:
        with reading(settings) as reader:
            conversion = (
                None
                if code == "USD"
                else FocusInCurrency(currency_table(reader, settings.currency, code))
            )
            invoices = invoiced_amounts(reader, load_pricer(settings), month) if invoiced else None
            for attempt in range(1, ATTEMPTS + 1):
                wait_until(cutoff + SETTLE * attempt)
                rows = export_focus(
                    reader, month, out, fmt, invoices, focus_version, conversion, cutoff
                )
                total = ledger_total(reader, month, cutoff)
                ours_usd = sum((r["PricingCurrencyEffectiveCost"] for r in rows), Decimal(0))
                if ours_usd == total:
                    break
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    except OSError as exc:
        if exc.filename is None:  # not about a file: mapped by its class, as any other error
            raise
        fail(f"--out {out}: cannot write: {exc.strerror or exc}", 2)
    billed = sum((row["BilledCost"] for row in rows), Decimal(0))
    effective = sum((row["EffectiveCost"] for row in rows), Decimal(0))
    from_invoice = sum(1 for row in rows if row["x_BilledCostSource"] == "invoice")
    typer.echo(
        f"wrote {len(rows)} FOCUS {focus_version} rows to {out} ({fmt}), the ledger as of "
        f"{cutoff:%Y-%m-%dT%H:%M:%SZ} (events ingested by then)"
    )
    typer.echo(
        f"BilledCost total {decimal_text(billed)} {code} ({from_invoice} rows invoiced, the "
        f"rest our estimate); EffectiveCost (ours) {decimal_text(effective)} {code}; "
        f"ledger total {decimal_text(total)} USD"
        + ("" if code == "USD" else f" (EffectiveCost in USD {decimal_text(ours_usd)})")
    )
    if code != "USD":
        used = sorted({(row["x_ExchangeRateDate"], row["x_ExchangeRate"]) for row in rows})
        if used:
            typer.echo(
                f"converted at {len(used)} USD->{code} rate{'' if len(used) == 1 else 's'}, "
                f"dated {used[0][0]} to "
                f"{used[-1][0]} (x_ExchangeRate, x_ExchangeRateDate on every row)"
            )
    if ours_usd != total:  # a write stamped by the cutoff still landing after every attempt
        err_console.print("[red]export total differs from the ledger: run again[/red]")
        raise typer.Exit(1)


# The export reads the rows ingested by one cutoff, twice (rows, then the total to check them).
# The worker stamps ingested_at just before its INSERT, so a batch stamped by the cutoff may
# still be landing then: the reads start SETTLE after the cutoff, and run again (same cutoff,
# SETTLE later each time) while rows and total differ.
SETTLE = timedelta(seconds=1)
ATTEMPTS = 4


def export_cutoff(now: datetime | None = None) -> datetime:
    """The export's one cutoff: the next whole second after now (a read through the worker
    binds times to the second), so every event ingested before the command started is in."""
    return (now or datetime.now(UTC)).replace(microsecond=0) + timedelta(seconds=1)


def wait_until(moment: datetime) -> None:
    delay = (moment - datetime.now(UTC)).total_seconds()
    if delay > 0:
        time.sleep(delay)


def print_reprice(result: RepriceResult, dry_run: bool, output: OutputFormat) -> None:
    """The per provider/model/team differences; with ``table``, totals and outcome after it."""
    emit_rows(
        ["provider", "model", "team", "events", "changed", "old_usd", "new_usd", "diff_usd"],
        [
            [d.provider, d.model, d.team, d.events, d.changed, d.old_cost, d.new_cost, d.difference]
            for d in result.rows()
        ],
        output,
        title=f"Reprice {result.since:%Y-%m-%d %H:%M} → {result.until:%Y-%m-%d %H:%M} UTC",
    )
    if output is not OutputFormat.table:
        return
    typer.echo(
        f"events {result.events}, changed {result.changed}; total "
        f"{decimal_text(result.old_total)} → {decimal_text(result.new_total)} USD "
        f"(diff {decimal_text(result.new_total - result.old_total)})"
    )
    if dry_run:
        typer.echo("dry run: nothing written")
    elif result.version is None:
        typer.echo("no rating changed: nothing written")
    else:
        typer.echo(f"written as price version {result.version}; old rows in ledger_rerated")


def reprice(
    since: SinceOption,
    until: UntilOption = "now",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show the differences, write nothing")
    ] = False,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Re-rate [since, until) under the current catalog as a new price version."""
    settings = settings_or_exit(config)
    start, end = parse_moment(since), parse_moment(until)
    refuse_beside_worker(settings, "reprice writes to the ledger", 1)
    try:
        pricer = load_pricer(settings)
    except ConfigError as exc:
        fail(str(exc), 2)
    client = connect(settings.clickhouse.dsn, settings.clickhouse.database)
    try:
        migrate(client, settings.clickhouse.cluster)
        result = reprice_period(client, pricer, start, end, dry_run=dry_run)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    finally:
        client.close()
    print_reprice(result, dry_run, output)
