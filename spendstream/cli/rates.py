"""``spendstream rates import|show`` (a typer sub-app): exchange rates for showing USD figures
in another currency (docs/currencies.md).

An import is POSTed to the running worker's ``/api/v1/rates`` (an operator token without
``--team``), or written directly to ClickHouse when no worker runs. All or nothing: a file with
a bad line imports nothing and every bad line is listed with its fix (exit 2).
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from spendstream.cli.common import (
    ConfigOption,
    OutputFormat,
    OutputOption,
    emit_rows,
    fail,
    settings_or_exit,
)
from spendstream.currency.rates import RateFileError, check_currency, parse_rates_csv
from spendstream.currency.store import rate_table, store_rates
from spendstream.sinks.access import ApiError, open_reader, worker_api
from spendstream.sinks.client import connect
from spendstream.worker.schema import migrate

rates_app = typer.Typer(
    help="Exchange rates from USD for reports, budgets and the dashboard.", no_args_is_help=True
)


@rates_app.command("import")
def import_rates(
    path: Annotated[Path, typer.Argument(help="CSV with a header date,currency,rate")],
    config: ConfigOption = None,
) -> None:
    """Import daily rates: each line says how many units of a currency one USD bought that day
    (2026-12-04,EUR,0.9213). A day already imported is replaced."""
    settings = settings_or_exit(config)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc}", 2)
    try:
        rates = parse_rates_csv(text, str(path))
    except RateFileError as exc:
        fail(str(exc), 2)
    api = worker_api(settings)
    if api is not None:
        try:
            done = dict(api.post("/rates", {"csv": text, "source": path.name}))
        except ApiError as exc:
            fail(f"worker refused: {exc}", 1)
    else:
        client = connect(settings.clickhouse.dsn, settings.clickhouse.database)
        migrate(client)
        done = store_rates(client, rates, path.name, getpass.getuser()).as_dict()
    spans = ", ".join(
        f"{code} {span['first']} to {span['last']}" for code, span in done["currencies"].items()
    )
    typer.echo(f"imported {done['rows']} rates ({spans})")


@rates_app.command("show")
def show_rates(
    currency: Annotated[str, typer.Argument(help="ISO 4217 code, e.g. EUR")],
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """The rates of one currency (its configured fixed rate, else the imported days)."""
    settings = settings_or_exit(config)
    try:
        code = check_currency(currency.upper())
    except ValueError as exc:
        fail(str(exc), 2)
    table = rate_table(open_reader(settings), settings.currency, code)
    if table.fixed is not None:
        emit_rows(["currency", "rate"], [[code, table.fixed]], output, f"{code}: fixed rate")
        return
    rows = [[day, value] for day, value in zip(table.days, table.values, strict=True)]
    emit_rows(["day", "rate"], rows, output, f"1 USD in {code}, per day")
