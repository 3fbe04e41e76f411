"""``spendstream prices``: list, show and check prices (mount ``prices_app`` on the main CLI)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

from spendstream.cli.common import (
    ConfigOption,
    OutputFormat,
    OutputOption,
    emit_rows,
    fail,
    settings_or_exit,
)
from spendstream.config import ConfigError
from spendstream.money import decimal_text
from spendstream.pricing import load_pricer
from spendstream.pricing.compare import Comparison, compare_with_litellm, load_litellm_map
from spendstream.pricing.known import load_known_differences
from spendstream.pricing.listing import (
    PriceLine,
    check_override_file,
    price_list,
    show_model,
    unit_price_list,
)
from spendstream.pricing.proposal import proposal_toml, propose
from spendstream.pricing.rating import Pricer

prices_app = typer.Typer(
    help="Price catalog: list prices, show one model, check an override file, compare with "
    "LiteLLM's price map.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

ProviderOption = Annotated[
    str | None, typer.Option("--provider", "-p", help="only this provider (aliases accepted)")
]
AtOption = Annotated[
    str | None, typer.Option(help="prices in force at this date (YYYY-MM-DD); default today")
]


def _day(at: str | None) -> datetime | None:
    """Midnight UTC of ``at`` (YYYY-MM-DD), or None for today; ValueError when malformed."""
    return datetime.combine(date.fromisoformat(at), datetime.min.time(), UTC) if at else None


def _pricer(config: str | None) -> Pricer:
    """The catalog plus the overrides of the config's pricing table; an invalid ``[pricing]``
    table is an error message and exit 1 for every command (not a traceback)."""
    settings = settings_or_exit(config)
    try:
        return load_pricer(settings)
    except ConfigError as exc:
        fail(str(exc))


def _money(value: Decimal | None, missing: str = "—") -> str:
    return missing if value is None else decimal_text(value)


def _cached(value: Decimal | None) -> str:
    """Cache rates left out of the catalog are billed at the input rate."""
    return _money(value, missing="= input")


def _percent(fraction: Decimal) -> str:
    return f"{decimal_text(fraction * 100)} %"


def _long_context(line: PriceLine) -> str:
    return "; ".join(
        f">{threshold:,}: {_money(rates.input)}/{_money(rates.output)}"
        for threshold, rates in line.long_context
    )


@prices_app.command("list")
def list_prices(
    provider: ProviderOption = None,
    at: AtOption = None,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Every catalog model's price in force (USD per million tokens)."""
    pricer = _pricer(config)
    try:
        when = _day(at)
        lines = price_list(pricer, provider, when)
    except (ConfigError, ValueError) as exc:
        fail(str(exc))
    columns = ["provider", "model", "input", "output", "cache read", "cache write"]
    columns += ["batch off", "long context (in/out)", "since"]
    rows = [
        [
            line.provider,
            line.model,
            _money(line.input),
            _money(line.output),
            _cached(line.cache_read),
            _cached(line.cache_write),
            _percent(line.batch_discount),
            _long_context(line),
            line.effective_from.date().isoformat(),
        ]
        for line in lines
    ]
    emit_rows(columns, rows, output, f"Prices in force {at or 'today'} (USD / 1M tokens)")


@prices_app.command("units")
def list_unit_prices(
    provider: ProviderOption = None,
    at: AtOption = None,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Usage-unit prices in force (images, audio, search calls, storage, ...; catalog and
    overrides): USD per `per` units."""
    pricer = _pricer(config)
    try:
        when = _day(at)
        lines = unit_price_list(pricer, provider, when)
    except (ConfigError, ValueError) as exc:
        fail(str(exc))
    columns = ["provider", "model", "unit", "price", "per", "since", "source"]
    rows = [
        [
            line.provider,
            line.model,
            line.unit,
            _money(line.price),
            _money(line.per),
            line.effective_from.date().isoformat() if line.effective_from else "",
            line.origin,
        ]
        for line in lines
    ]
    emit_rows(columns, rows, output, f"Unit prices in force {at or 'today'} (USD per `per` units)")


@prices_app.command("show")
def show(
    model: Annotated[str, typer.Argument(help="model name as reported, e.g. gpt-4o-2024-08-06")],
    provider: ProviderOption = None,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """One model's full price history, tiers, aliases, source and matching overrides.

    With csv/json, one row per price row and provider (overrides are left out).
    """
    pricer = _pricer(config)
    try:
        details = show_model(pricer, model, provider)
    except ConfigError as exc:
        fail(str(exc))
    columns = ["from", "input", "output", "cache read", "cache write", "1h write", "reasoning"]
    columns.append("long context (in/out)")
    if output is not OutputFormat.table:
        columns = ["provider", "model", *columns, "batch off", "source"]
    rows: list[list[Any]] = []
    for detail in details:
        entry = detail.entry
        history = [
            [
                line.effective_from.date().isoformat(),
                _money(line.input),
                _money(line.output),
                _cached(line.cache_read),
                _cached(line.cache_write),
                _money(line.cache_write_1h),
                _money(line.reasoning) if line.reasoning is not None else "in output",
                _long_context(line),
            ]
            for line in detail.lines
        ]
        batch = _percent(detail.lines[-1].batch_discount)
        if output is not OutputFormat.table:
            rows += [[entry.provider, entry.model, *row, batch, entry.source] for row in history]
            continue
        emit_rows(columns, history, output, f"{entry.key} ({entry.kind})", caption=entry.source)
        lines = [f"aliases: {', '.join(entry.aliases) or '—'}; batch discount: {batch}"]
        for override in detail.overrides:
            scope = ", ".join(f"{k}={v}" for k, v in override.tags.items()) or "all events"
            what = (
                f"{_percent(override.discount)} off list"
                if override.discount is not None
                else f"{_money(override.input)}/{_money(override.output)}"
            )
            lines.append(f"override {override.name}: {what} for {scope}")
        typer.echo("\n".join(lines))
    if output is not OutputFormat.table:
        emit_rows(columns, rows, output)


@prices_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="override file to validate")],
    catalog: Annotated[
        Path | None, typer.Option(help="catalog file to check against (default: shipped)")
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Validate an override file; exit status 1 with precise errors if it is invalid."""
    try:
        overrides = check_override_file(file, catalog)
    except ConfigError as exc:
        fail(str(exc))
    rows = [
        [
            override.name,
            override.provider,
            override.model,
            f"{_percent(override.discount)} off"
            if override.discount is not None
            else f"{_money(override.input)}/{_money(override.output)}",
            ", ".join(f"{k}={v}" for k, v in override.tags.items()),
            override.effective_from.date().isoformat() if override.effective_from else "",
            override.effective_until.date().isoformat() if override.effective_until else "",
        ]
        for override in overrides
    ]
    columns = ["name", "provider", "model", "price", "tags", "from", "until"]
    emit_rows(columns, rows, output, f"{file}: {len(overrides)} override(s) OK")


KnownOption = Annotated[
    Path | None,
    typer.Option(help="known-differences file (default: the one shipped with the catalog)"),
]


def _comparison(
    pricer: Pricer, file: Path, at: str | None, known: Path | None
) -> tuple[Comparison, datetime | None]:
    try:
        when = _day(at)
        entries = load_litellm_map(file)
        return compare_with_litellm(pricer, entries, when, load_known_differences(known)), when
    except (ConfigError, ValueError) as exc:
        fail(str(exc))


@prices_app.command("compare")
def compare(
    file: Annotated[
        Path, typer.Argument(help="LiteLLM model_prices_and_context_window.json to compare with")
    ],
    at: Annotated[
        str | None, typer.Option(help="catalog prices in force at this date; default today")
    ] = None,
    known: KnownOption = None,
    unexplained: Annotated[
        bool, typer.Option("--unexplained", help="list only differences no known one explains")
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(help="exit status 1 when a difference is unexplained or a known one stale"),
    ] = False,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """List every rate that differs between the catalog and a LiteLLM price map, each with the
    known difference that explains it (docs/pricing.md).

    Keys are compared at their placement (azure/eu/gpt-4o with the model's Azure EU rows).
    Rates are USD per million tokens; cache rates the catalog leaves out count as the input
    rate. Exit status 0 whether or not rates differ (1 with --strict when some difference is
    unexplained or a known difference stale), 1 when a file cannot be read.
    """
    pricer = _pricer(config)
    result, _when = _comparison(pricer, file, at, known)
    shown = result.unexplained if unexplained else result.differences
    columns = ["provider", "litellm model", "catalog model", "priced as", "rate", "catalog"]
    columns += ["litellm", "difference", "catalog since", "explained by"]
    rows = [
        [
            d.provider,
            d.litellm_key,
            d.catalog_model,
            "/".join(part for part in (d.platform, d.region) if part),
            d.rate,
            d.catalog,
            d.litellm,
            d.litellm - d.catalog,
            d.effective_from.date().isoformat(),
            _first_line(d.known.reason) if d.known else "UNEXPLAINED",
        ]
        for d in shown
    ]
    title = (
        f"{file}: {len({d.litellm_key for d in result.differences})} of {result.compared} "
        f"matching models differ ({len(result.differences)} rates, "
        f"{len(result.unexplained)} unexplained, {len(result.stale)} stale known); "
        f"{len(result.unknown)} not in the catalog (USD / 1M tokens)"
    )
    emit_rows(columns, rows, output, title)
    if output is OutputFormat.table:  # csv and json stay one record per difference
        for entry, pattern in result.stale:
            typer.echo(f"stale known difference {pattern!r}: {_first_line(entry.reason)}")
    if strict and (result.unexplained or result.stale):
        raise typer.Exit(1)


@prices_app.command("update")
def update(
    file: Annotated[Path, typer.Argument(help="a newer LiteLLM price map to take as a proposal")],
    effective: Annotated[
        str | None,
        typer.Option(help="date the proposed rows would take effect (YYYY-MM-DD); default today"),
    ] = None,
    known: KnownOption = None,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Propose catalog changes from a LiteLLM price map; nothing is written.

    Every unexplained difference becomes a proposed rate with its effective date, followed by
    the rows (TOML) to paste into catalog.toml after checking them on the provider's page, or
    to reject with a known_differences.toml entry saying why our rate stands.
    """
    pricer = _pricer(config)
    try:
        starts = date.fromisoformat(effective) if effective else datetime.now(UTC).date()
    except ValueError as exc:
        fail(f"--effective {effective!r}: {exc}")
    result, _when = _comparison(pricer, file, None, known)
    proposals = propose(result, starts)
    columns = ["catalog price", "rate", "now", "proposed", "from", "litellm keys"]
    rows = [
        [
            proposal.where,
            name,
            ours,
            theirs,
            starts.isoformat(),
            ", ".join(sorted(proposal.litellm_keys)),
        ]
        for proposal in proposals
        for name, (ours, theirs) in proposal.changes.items()
    ]
    emit_rows(columns, rows, output, f"{file}: {len(proposals)} proposed change(s); none applied")
    if proposals and output is OutputFormat.table:
        typer.echo("\n# Proposed rows (check each on its provider's page before pasting):\n")
        typer.echo(proposal_toml(proposals, pricer))


def _first_line(text: str) -> str:
    return " ".join(text.split())[:90]
