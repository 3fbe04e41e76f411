"""``spendstream anomalies`` (list, show, ack, resolve, dismiss, reopen, silence, unsilence):
the anomaly inbox, and silences of its rules.

With a running worker, everything goes through its API (the author of a change is the token's
name, its role decides); with none, reads and writes go to the chDB directory directly and the
author is the OS user (who owns the data directory, an admin).
"""

from __future__ import annotations

import getpass
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from spendstream.alerts.config import load_alerting
from spendstream.alerts.silences import SilenceRequest
from spendstream.anomalies.config import load_anomalies
from spendstream.anomalies.http import since_moment
from spendstream.anomalies.inbox import change_state, entries
from spendstream.anomalies.silences import silence_rule
from spendstream.auth.roles import Principal, Role
from spendstream.cli.common import (
    ConfigOption,
    OutputFormat,
    OutputOption,
    emit_rows,
    fail,
    settings_or_exit,
)
from spendstream.config import ConfigError, Settings
from spendstream.errors import InputError
from spendstream.money import format_usd
from spendstream.sinks.access import ApiError, DirectReader, jsonable, worker_api
from spendstream.worker.schema import migrate

anomalies_app = typer.Typer(
    help="The anomaly inbox: episodes of [[anomalies]] rules and their state.",
    invoke_without_command=True,
)
COLUMNS = ["episode_id", "rule", "group", "started_at", "observed", "expected", "state", "by"]
ReasonOption = Annotated[str, typer.Option(help="why (kept in the audit log)")]
IdArgument = Annotated[str, typer.Argument(help="the episode's id (episode_id)")]


def _local_admin() -> Principal:
    return Principal(getpass.getuser(), Role.ADMIN)


def _listing(settings: Settings, since: str, states: list[str] | None) -> list[dict[str, Any]]:
    api = worker_api(settings)
    if api is not None:
        params: dict[str, Any] = {"since": since}
        if states:
            params["state"] = states
        try:
            return list(api.get("/anomalies", params)["anomalies"])
        except ApiError as exc:
            fail(f"worker refused: {exc}", 1)
    reader = DirectReader(settings)
    try:
        migrate(reader.client)
        start = since_moment(since, datetime.now(UTC))
        found = entries(reader, _local_admin(), start, set(states) if states else None)
        return [jsonable(e.as_dict()) for e in found]
    finally:
        reader.client.close()


@anomalies_app.callback()
def anomalies(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="episodes started since (30d or ISO 8601)")] = "30d",
    state: Annotated[list[str] | None, typer.Option(help="only this state (repeatable)")] = None,
    config: ConfigOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """List anomaly episodes, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    found = _listing(settings_or_exit(config), since, state)
    if output is OutputFormat.json:
        for entry in found:
            sys.stdout.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return
    rows = [
        [
            e["episode_id"],
            e["rule"],
            e["group"],
            e["started_at"],
            format_usd(e["observed_usd"]) if output is OutputFormat.table else e["observed_usd"],
            format_usd(e["expected_usd"]) if output is OutputFormat.table else e["expected_usd"],
            e["state"],
            e["state_by"],
        ]
        for e in found
    ]
    emit_rows(COLUMNS, rows, output, f"Anomaly episodes since {since}")


@anomalies_app.command("show")
def show(episode_id: IdArgument, config: ConfigOption = None) -> None:
    """One episode as JSON: figures, Explain's drivers, state and its history."""
    found = [
        e
        for e in _listing(settings_or_exit(config), "3650d", None)
        if e["episode_id"] == episode_id
    ]
    if not found:
        fail(f"no anomaly episode {episode_id!r}", 2)
    sys.stdout.write(json.dumps(found[0], indent=2, ensure_ascii=False) + "\n")


def _change(episode_id: str, state: str, reason: str, config: str | None) -> None:
    settings = settings_or_exit(config)
    api = worker_api(settings)
    if api is not None:
        try:
            done = api.post(f"/anomalies/{episode_id}", {"state": state, "reason": reason})
        except ApiError as exc:
            fail(f"worker refused: {exc}", 1)
    else:
        reader = DirectReader(settings)
        try:
            migrate(reader.client)
            entry = change_state(
                reader, reader.client, _local_admin(), episode_id, state, reason, datetime.now(UTC)
            )
            done = jsonable(entry.as_dict())
        finally:
            reader.client.close()
    typer.echo(f"{episode_id}: {done['state']} by {done['state_by']}")


def _state_command(verb: str, state: str, help_text: str) -> None:
    def command(
        episode_id: IdArgument, reason: ReasonOption = "", config: ConfigOption = None
    ) -> None:
        _change(episode_id, state, reason, config)

    command.__doc__ = help_text
    anomalies_app.command(verb)(command)


for _verb, _state, _help in (
    ("ack", "acknowledged", "Acknowledge an episode: someone is looking at it."),
    (
        "resolve",
        "resolved",
        "Resolve an episode (the detector also resolves it when spend is back).",
    ),
    ("dismiss", "dismissed", "Dismiss an episode: not a real problem (kept, audited)."),
    ("reopen", "open", "Put an episode back to open."),
):
    _state_command(_verb, _state, _help)


def _silence(rule: str, request: SilenceRequest, config: str | None) -> None:
    settings = settings_or_exit(config)
    api = worker_api(settings)
    if api is not None:  # the API records the token's name as the author, its role decides
        body = request.model_dump(mode="json", include={"action", "duration", "reason"})
        if request.action == "unsilence":
            body.pop("duration")
        try:
            until = api.post(f"/anomaly-rules/{rule}/silence", body)["until"]
        except ApiError as exc:
            fail(f"worker refused: {exc}", 1)
    else:
        try:
            rules = load_anomalies(settings, load_alerting(settings, config), config)
        except ConfigError as exc:
            fail(str(exc), 2)
        reader = DirectReader(settings)
        try:
            migrate(reader.client)
            done = silence_rule(reader.client, rules, _local_admin(), request, datetime.now(UTC))
            until = done.until.isoformat()
        except InputError as exc:
            fail(str(exc), 2)
        finally:
            reader.client.close()
    verb = "silenced until" if request.action == "silence" else "unsilenced at"
    typer.echo(f"{rule}: {verb} {until}")


RuleArgument = Annotated[str, typer.Argument(help="the [[anomalies]] rule's name")]


@anomalies_app.command("silence")
def silence(
    rule: RuleArgument,
    duration: Annotated[str, typer.Option("--for", help="how long, e.g. 30m, 2h, 1d")] = "1h",
    reason: ReasonOption = "",
    config: ConfigOption = None,
) -> None:
    """Silence a rule's notices for a while (episodes are still detected and recorded)."""
    try:
        request = SilenceRequest(budget=rule, duration=duration, reason=reason)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise typer.BadParameter(str(exc.errors()[0]["msg"])) from None
    if request.duration <= timedelta(0):
        raise typer.BadParameter("--for must be positive")
    _silence(rule, request, config)


@anomalies_app.command("unsilence")
def unsilence(rule: RuleArgument, reason: ReasonOption = "", config: ConfigOption = None) -> None:
    """End a rule's silence now."""
    _silence(rule, SilenceRequest(action="unsilence", budget=rule, reason=reason), config)
