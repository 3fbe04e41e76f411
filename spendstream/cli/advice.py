"""``spendstream recommend`` (list, accept, dismiss, reopen, log) and ``spendstream whatif``.

Reads go through :func:`~spendstream.sinks.access.open_reader` (the worker's ``/sql`` while a
worker owns the chDB directory). Decisions are POSTed to the running worker's API (the author
is the token's name) or, when no worker runs, written directly (the author is the OS user).
"""

from __future__ import annotations

import getpass
import json
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from spendstream.advice import store
from spendstream.advice.model import Recommendation
from spendstream.advice.service import Advisor
from spendstream.advice.whatif import WhatIfError, WhatIfRequest, simulate
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
from spendstream.cli.insights import ScopeOption
from spendstream.config import ConfigError, Settings
from spendstream.decisions import pairs_text
from spendstream.insights.base import InsightError, parse_scope
from spendstream.money import format_usd
from spendstream.pricing import load_pricer
from spendstream.sinks.access import ApiError, jsonable, worker_api

recommend_app = typer.Typer(
    help="Ranked recommendations in dollars a month, and decisions on them.",
    invoke_without_command=True,
)
DaysOption = Annotated[int, typer.Option(min=1, max=366, help="read the last N days")]
ReasonOption = Annotated[str, typer.Option(help="why (kept in the audit log)")]
COLUMNS = ["rec_id", "kind", "scope", "action", "monthly_usd", "share_pct", "state", "realised"]


def _recommendations(
    settings: Settings, days: int, scope: list[str] | None, dismissed: bool
) -> list[Recommendation]:
    try:
        pricer = load_pricer(settings)
        pairs = parse_scope(scope or [])
    except (ConfigError, InsightError) as exc:
        fail(str(exc), 2)
    with reading(settings) as reader:
        advisor = Advisor(reader, pricer, settings.insights)
        return advisor.recommendations(datetime.now(UTC), days, pairs, include_dismissed=dismissed)


def _row(rec: Recommendation, output: OutputFormat) -> list[Any]:
    realised = rec.realised.monthly_usd if rec.realised else None
    if output is OutputFormat.table:  # people read the rounded figure; CSV/JSON keep all digits
        scope = pairs_text(rec.scope.items())  # an empty value named: app=(none)
        shown = format_usd(realised) + "/month" if realised is not None else ""
        return [
            rec.rec_id,
            rec.kind,
            scope,
            rec.action,
            format_usd(rec.monthly_usd),
            rec.share_pct,
            rec.state,
            shown,
        ]
    return [
        rec.rec_id,
        rec.kind,
        pairs_text(rec.scope.items(), empty=""),  # CSV/JSON: the values as stored
        rec.action,
        rec.monthly_usd,
        rec.share_pct,
        rec.state,
        realised,
    ]


def headline(recs: list[Recommendation], days: int) -> str:
    """The answer before the table: what the open ones are worth together, and the largest."""
    open_recs = [rec for rec in recs if rec.state == "open"]
    if not open_recs:
        return f"No open recommendation from the last {days} days."
    total = sum((rec.monthly_usd for rec in open_recs), start=Decimal(0))
    top = max(open_recs, key=lambda rec: rec.monthly_usd)
    count = f"{len(open_recs)} open recommendation{'s' if len(open_recs) > 1 else ''}"
    return (
        f"{count} worth {format_usd(total)} a month together; the largest, "
        f"{format_usd(top.monthly_usd)} a month: {top.action}"
    )


@recommend_app.callback()
def recommend(
    ctx: typer.Context,
    days: DaysOption = 30,
    scope: ScopeOption = None,
    dismissed: Annotated[bool, typer.Option(help="also list dismissed ones")] = False,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """List recommendations over the last N days, largest dollars a month first."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_or_exit(config)
    recs = _recommendations(settings, days, scope, dismissed)
    if output is OutputFormat.json:
        for rec in recs:
            sys.stdout.write(json.dumps(jsonable(rec.as_dict()), ensure_ascii=False) + "\n")
        return
    if output is OutputFormat.table:
        typer.echo(headline(recs, days))
    now = datetime.now(UTC)
    title = f"Recommendations, last {days} days ({now - timedelta(days=days):%Y-%m-%d} → now)"
    caption = "monthly = saving over the period x 30 / days; price estimates, never quality"
    emit_rows(COLUMNS, [_row(rec, output) for rec in recs], output, title, caption)


def _decide(rec_id: str, state: str, reason: str, days: int, config: str | None) -> None:
    settings = settings_or_exit(config)
    api = worker_api(settings)
    if api is not None:
        try:
            done = api.post(
                f"/recommendations/{rec_id}", {"state": state, "reason": reason, "days": days}
            )
        except ApiError as exc:
            fail(f"worker refused: {exc}", 1)
        typer.echo(f"{rec_id}: {done['state']} by {done['decided_by']}")
        return
    recs = _recommendations(settings, days, None, True)
    rec = next((r for r in recs if r.rec_id == rec_id), None)
    if rec is None:
        fail(f"no recommendation {rec_id!r} in the last {days} days", 2)
    # Imported here: the schema pulls in every part's tables, which reading does not need.
    from spendstream.sinks.client import connect
    from spendstream.worker.schema import migrate

    client = connect(settings.clickhouse.dsn, settings.clickhouse.database)
    try:
        migrate(client)
        done_here = store.record(client, rec, state, getpass.getuser(), reason, datetime.now(UTC))
    finally:
        client.close()
    typer.echo(f"{rec_id}: {done_here.state} by {done_here.decided_by}")


IdArgument = Annotated[str, typer.Argument(help="the recommendation's id (rec_id)")]


def _decision_command(verb: str, state: str, help_text: str) -> None:
    def command(
        rec_id: IdArgument,
        reason: ReasonOption = "",
        days: DaysOption = 30,
        config: ConfigOption = None,
    ) -> None:
        _decide(rec_id, state, reason, days, config)

    command.__doc__ = help_text
    recommend_app.command(verb)(command)


for _verb, _state, _help in (
    ("accept", "accepted", "Mark a recommendation accepted: its realised savings are tracked."),
    ("dismiss", "dismissed", "Dismiss a recommendation: the list and the digest drop it."),
    ("reopen", "open", "Put an accepted or dismissed recommendation back in the open list."),
):
    _decision_command(_verb, _state, _help)


@recommend_app.command("log")
def log(
    since: Annotated[str, typer.Option(help="from (ISO 8601 or 30d)")] = "90d",
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """The decision log: who accepted or dismissed what, when and why."""
    settings = settings_or_exit(config)
    with reading(settings) as reader:
        columns, rows = store.history(reader, parse_moment(since))
    emit_rows(columns, rows, output, "Recommendation decisions")


def whatif(
    changes: Annotated[
        Path, typer.Argument(help="a JSON file: {since, until, by, changes: [...]} ('-': stdin)")
    ],
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Re-rate a period's real traffic under changes (model moves, batch, cache share, prices,
    drops) without writing the ledger; before and after per scope and per day."""
    settings = settings_or_exit(config)
    text = sys.stdin.read() if str(changes) == "-" else changes.read_text()
    try:
        request = WhatIfRequest.model_validate_json(text)
        pricer = load_pricer(settings)
    except (ValidationError, ConfigError) as exc:
        fail(str(exc), 2)
    try:
        with reading(settings) as reader:
            result = simulate(reader, pricer, request)
    except WhatIfError as exc:
        fail(str(exc), 2)
    if output is OutputFormat.json:
        sys.stdout.write(json.dumps(jsonable(result)) + "\n")
        return
    for name in ("by_scope", "by_day"):
        table = result[name]
        emit_rows(table["columns"], table["rows"], output, f"What-if, {name.replace('_', ' ')}")
    if output is OutputFormat.table:
        typer.echo(
            f"total: {format_usd(result['before_usd'])} -> {format_usd(result['after_usd'])} "
            f"({format_usd(result['change_usd'])})"
        )
