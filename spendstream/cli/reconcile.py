"""``spendstream reconcile``: load the providers' bills and explain the difference to ours.

``import`` and ``fetch`` write (they need the chDB directory, or a ClickHouse server); ``report``
reads through :func:`spendstream.cli.ledger.reading`, so it also works while a worker runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from clickhouse_connect.driver.client import Client

from spendstream.alerts.config import AlertsConfig, load_alerting
from spendstream.cli.common import (
    ConfigOption,
    OutputFormat,
    OutputOption,
    emit,
    fail,
    parse_moment,
    reading,
    refuse_beside_worker,
    settings_or_exit,
)
from spendstream.config import ConfigError, Settings
from spendstream.leadership import LeaseStore
from spendstream.notifications.delivery import Dispatcher
from spendstream.notifications.fenced import deliver_as_leader
from spendstream.notifications.outbox import Outbox
from spendstream.pricing import load_pricer
from spendstream.reconcile.alerting import ReconciliationAlerts
from spendstream.reconcile.fetch import AdminClient, FetchError
from spendstream.reconcile.ledger_side import AccountMap, account_maps
from spendstream.reconcile.lines import ReportError
from spendstream.reconcile.loading import fetch_reports, import_files
from spendstream.reconcile.report import BY_CHOICES, By, variance_table
from spendstream.reconcile.store import InvoiceStore, LoadResult, loaded_reports, read_lines
from spendstream.reconcile.variance import CellVariance, compute_variance, day_range
from spendstream.sinks.access import ClientReader, QueryResult, Reader
from spendstream.sinks.client import connect
from spendstream.worker.schema import migrate

reconcile_app = typer.Typer(
    help="Reconcile our estimate against the providers' bills.", no_args_is_help=True
)

ProviderOption = Annotated[
    str,
    typer.Option(
        "--provider", "-p", help="openai, anthropic, or the ledger provider a FOCUS bill is for"
    ),
]
SinceOption = Annotated[str, typer.Option(help="first day: ISO date/time or 7d/24h ago")]
UntilOption = Annotated[str, typer.Option(help="end (exclusive): ISO date/time or 'now'")]


def accounts_of(settings: Settings) -> dict[str, AccountMap]:
    return account_maps(settings.reconcile)


def _print_loads(results: list[tuple[str, LoadResult]]) -> None:
    for name, r in results:
        typer.echo(
            f"{name}: {r.new} new day(s), {r.replaced} replaced, {r.unchanged} unchanged; "
            f"{r.lines_written} line(s) written, {r.lines_removed} withdrawn"
        )


@contextmanager
def writing(settings: Settings, what: str) -> Iterator[Client]:
    """A migrated client, closed afterwards (chDB: one data directory per process at a time);
    beside a worker that holds the chDB directory, exit 2 saying ``what`` writes and what to
    do (opening it here failed with a lock error and a traceback)."""
    refuse_beside_worker(settings, what)
    client = connect(settings.clickhouse.dsn, settings.clickhouse.database)
    try:
        migrate(client)
        yield client
    finally:
        client.close()


@reconcile_app.command("import")
def import_(
    files: Annotated[list[Path], typer.Argument(help="saved API pages (.json) or FOCUS bills")],
    provider: ProviderOption,
    config: ConfigOption = None,
) -> None:
    """Load saved admin API responses (every page) or FOCUS bills (.csv/.parquet)."""
    settings = settings_or_exit(config)
    try:
        with writing(settings, "reconcile import writes invoice lines") as client:
            _print_loads(import_files(InvoiceStore(client), provider, files))
    except ReportError as exc:
        fail(str(exc), 2)


@reconcile_app.command()
def fetch(
    provider: ProviderOption,
    since: SinceOption = "7d",
    until: UntilOption = "now",
    config: ConfigOption = None,
) -> None:
    """Fetch cost and usage reports from the provider's admin API and load them."""
    settings = settings_or_exit(config)
    start, end = day_range(parse_moment(since), parse_moment(until))
    begin = datetime(start.year, start.month, start.day, tzinfo=UTC)
    finish = datetime(end.year, end.month, end.day, tzinfo=UTC)
    try:
        with (
            AdminClient(provider, settings.reconcile.provider(provider)) as api,
            writing(settings, "reconcile fetch writes invoice lines") as client,
        ):
            _print_loads(fetch_reports(InvoiceStore(client), api, begin, finish))
    except (FetchError, ReportError) as exc:
        fail(str(exc), 1)


def variance_cells(
    settings: Settings, reader: Reader, since: str, until: str
) -> list[CellVariance]:
    start, end = day_range(parse_moment(since), parse_moment(until))
    try:
        pricer = load_pricer(settings)
    except ConfigError as exc:
        fail(str(exc), 2)
    lines = read_lines(reader, start, end)
    return compute_variance(reader, lines, pricer, accounts_of(settings), start, end)


@reconcile_app.command()
def report(
    since: SinceOption = "7d",
    until: UntilOption = "now",
    by: Annotated[str, typer.Option("--by", "-b", help="day, model, project or team")] = "model",
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Invoiced vs our ledger, signed (invoiced - ours), with the difference explained."""
    if by not in BY_CHOICES:
        raise typer.BadParameter(f"--by {by!r}: use one of {', '.join(BY_CHOICES)}")
    settings = settings_or_exit(config)
    with reading(settings) as reader:
        cells = variance_cells(settings, reader, since, until)
    if not cells:
        fail("no invoice loaded for this period: run `spendstream reconcile fetch` or `import`")
    group: By = by
    columns, rows, total = variance_table(cells, group, accounts_of(settings))
    title = (
        f"Invoiced vs ours by {by} (USD; difference = invoiced - ours; coverage "
        f"{total.coverage}% of invoiced dollars attributed by our tags)"
    )
    if output is OutputFormat.table:  # a terminal shows cents; csv and json carry the exact amounts
        title += "\nrounded to cents: use -f csv or -f json for exact amounts"
        rows = [[to_cents(value) for value in row] for row in rows]
        columns = [SHORT.get(name, name) for name in columns]
    emit(QueryResult(columns, rows), output, title)


# Terminal headers (csv and json keep the full names, documented in docs/reconciliation.md).
SHORT = {
    "invoiced_usd": "invoiced",
    "our_usd": "ours",
    "difference_usd": "diff",
    "difference_pct": "diff %",
    "invoiced_tokens": "inv tokens",
    "our_tokens": "our tokens",
    "token_difference": "tok diff",
    "price_drift": "drift",
    "never_seen": "unseen",
    "unexplained": "unexpl.",
    "coverage_pct": "cover %",
    "invoiced_quantity": "inv qty",
    "our_quantity": "our qty",
}


def to_cents(value: object) -> object:
    if isinstance(value, Decimal) and value.as_tuple().exponent not in (0, -2):
        return value.quantize(Decimal("0.01"))
    return value


@reconcile_app.command()
def status(config: ConfigOption = None, output: OutputOption = OutputFormat.table) -> None:
    """Which provider reports are loaded: days covered, lines, dollars, tokens, last load."""
    settings = settings_or_exit(config)
    with reading(settings) as reader:
        emit(loaded_reports(reader), output, "Loaded provider reports")


@reconcile_app.command()
def alert(
    since: SinceOption = "2d",
    until: UntilOption = "now",
    send: Annotated[
        bool, typer.Option("--send", help="deliver now (without a running worker)")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Record reconciliation alerts for cells over the reconcile.alerts rule (once per day)."""
    settings = settings_or_exit(config)
    rule = settings.reconcile.alerts
    if not rule.enabled:
        typer.echo("reconciliation alerts are off: set [reconcile.alerts] enabled = true")
        return
    try:
        channels = load_alerting(settings).alerts
    except ConfigError as exc:
        fail(str(exc), 2)
    unknown = [name for name in rule.channels if name not in channels.channels]
    if unknown:
        fail(f"reconcile.alerts.channels: {unknown} not defined under [alerts.channels]", 2)
    with writing(settings, "reconcile alert writes alerts") as client:
        cells = variance_cells(settings, ClientReader(client), since, until)
        store = Outbox(client)
        created = ReconciliationAlerts(store, rule, accounts_of(settings)).evaluate(cells)
        typer.echo(f"{len(created)} reconciliation alert(s) created")
        if send and created:
            deliver(settings, store, channels, [a.alert_id for a in created], len(rule.channels))


def deliver(
    settings: Settings,
    store: Outbox,
    channels: AlertsConfig,
    alert_ids: list[str],
    channels_per_alert: int,
) -> None:
    """Wait for the new outbox rows to go out, sending them here only while holding the
    alerting lease (beside a running worker, the worker sends them): after the grouping wait
    (alerts created together go out together), retrying failures for at most a minute."""
    expected = len(alert_ids) * channels_per_alert
    ch = settings.clickhouse
    leases = LeaseStore(connect(ch.dsn, ch.database))
    try:
        outcome = deliver_as_leader(
            store,
            Dispatcher(store, channels),
            leases,
            settings.leadership,
            alert_ids,
            expected,
            timeout_s=channels.group_wait.total_seconds() + 60,
        )
    finally:
        leases.client.close()
    by = "" if outcome.sent_here else " by the worker holding the alerting lease"
    typer.echo(f"{outcome.delivered} of {expected} delivery(ies) sent{by}")
    if outcome.delivered < expected:
        typer.echo("the rest stay in the outbox; the alerting lease holder retries them")
        raise typer.Exit(3)
