"""``spendstream prices``: list, show and check prices (mount ``prices_app`` on the main CLI)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from spendstream.config import ConfigError, load_settings, resolve_config_path
from spendstream.pricing.listing import (
    PriceLine,
    check_override_file,
    price_list,
    show_model,
)
from spendstream.pricing.rating import Pricer

prices_app = typer.Typer(
    help="Price catalog: list prices, show one model, check an override file.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="spendstream.toml whose [pricing] table applies"),
]
ProviderOption = Annotated[
    str | None, typer.Option("--provider", "-p", help="only this provider (aliases accepted)")
]


def _pricer(config: Path | None) -> Pricer:
    path = resolve_config_path(config)
    settings = load_settings(path)
    return Pricer.from_config(settings.pricing, base_dir=path.parent if path else None)


def _money(value: Decimal | None, missing: str = "—") -> str:
    return missing if value is None else f"{value.normalize():f}"


def _cached(value: Decimal | None) -> str:
    """Cache rates left out of the catalog are billed at the input rate."""
    return _money(value, missing="= input")


def _percent(fraction: Decimal) -> str:
    return f"{(fraction * 100).normalize():f} %"


def _long_context(line: PriceLine) -> str:
    return "; ".join(
        f">{threshold:,}: {_money(rates.input)}/{_money(rates.output)}"
        for threshold, rates in line.long_context
    )


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(1)


@prices_app.command("list")
def list_prices(
    provider: ProviderOption = None,
    at: Annotated[
        str | None, typer.Option(help="prices in force at this date (YYYY-MM-DD); default today")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Every catalog model's price in force (USD per million tokens)."""
    try:
        when = datetime.combine(date.fromisoformat(at), datetime.min.time(), UTC) if at else None
        lines = price_list(_pricer(config), provider, when)
    except (ConfigError, ValueError) as exc:
        raise _fail(str(exc)) from None
    table = Table(title=f"Prices in force {at or 'today'} (USD / 1M tokens)")
    for column in ("provider", "model", "input", "output", "cache read", "cache write"):
        table.add_column(column, justify="right" if column[0] in "ioc" else "left")
    table.add_column("batch off")
    table.add_column("long context (in/out)")
    table.add_column("since")
    for line in lines:
        table.add_row(
            line.provider,
            line.model,
            _money(line.input),
            _money(line.output),
            _cached(line.cache_read),
            _cached(line.cache_write),
            _percent(line.batch_discount),
            _long_context(line),
            line.effective_from.date().isoformat(),
        )
    out.print(table)


@prices_app.command("show")
def show(
    model: Annotated[str, typer.Argument(help="model name as reported, e.g. gpt-4o-2024-08-06")],
    provider: ProviderOption = None,
    config: ConfigOption = None,
) -> None:
    """One model's full price history, tiers, aliases, source and matching overrides."""
    try:
        details = show_model(_pricer(config), model, provider)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    for detail in details:
        entry = detail.entry
        table = Table(title=f"{entry.key} ({entry.kind})", caption=entry.source)
        for column in ("from", "input", "output", "cache read", "cache write", "1h write"):
            table.add_column(column, justify="left" if column == "from" else "right")
        table.add_column("reasoning", justify="right")
        table.add_column("long context (in/out)")
        for line in detail.lines:
            table.add_row(
                line.effective_from.date().isoformat(),
                _money(line.input),
                _money(line.output),
                _cached(line.cache_read),
                _cached(line.cache_write),
                _money(line.cache_write_1h),
                _money(line.reasoning) if line.reasoning is not None else "in output",
                _long_context(line),
            )
        out.print(table)
        batch = detail.lines[-1].batch_discount
        out.print(f"aliases: {', '.join(entry.aliases) or '—'}; batch discount: {_percent(batch)}")
        for override in detail.overrides:
            scope = ", ".join(f"{k}={v}" for k, v in override.tags.items()) or "all events"
            what = (
                f"{_percent(override.discount)} off list"
                if override.discount is not None
                else f"{_money(override.input)}/{_money(override.output)}"
            )
            out.print(f"override {override.name}: {what} for {scope}", highlight=False)


@prices_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="override file to validate")],
    catalog: Annotated[
        Path | None, typer.Option(help="catalog file to check against (default: shipped)")
    ] = None,
) -> None:
    """Validate an override file; exit status 1 with precise errors if it is invalid."""
    try:
        overrides = check_override_file(file, catalog)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    table = Table(title=f"{file}: {len(overrides)} override(s) OK")
    for column in ("name", "provider", "model", "price", "tags", "from", "until"):
        table.add_column(column)
    for override in overrides:
        price = (
            f"{_percent(override.discount)} off"
            if override.discount is not None
            else f"{_money(override.input)}/{_money(override.output)}"
        )
        table.add_row(
            override.name,
            override.provider,
            override.model,
            price,
            ", ".join(f"{k}={v}" for k, v in override.tags.items()),
            override.effective_from.date().isoformat() if override.effective_from else "",
            override.effective_until.date().isoformat() if override.effective_until else "",
        )
    out.print(table)
