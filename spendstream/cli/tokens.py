"""``spendstream tokens create|list|revoke`` and ``spendstream serve`` (the API standalone).

While a worker owns the chDB directory, token commands go through its API (with the CLI's own
token, which must be an admin's: nobody grants more than they hold). Otherwise they write
ClickHouse directly, as the local operator who can read the data files anyway.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from spendstream.auth.roles import Role
from spendstream.auth.tokens import TokenStore
from spendstream.cli.common import (
    ConfigOption,
    OutputFormat,
    OutputOption,
    console,
    emit,
    fail,
    settings_or_exit,
)
from spendstream.config import ConfigError, Settings
from spendstream.durations import parse_duration
from spendstream.sinks.access import QueryResult, running_worker_url, worker_api
from spendstream.sinks.client import connect
from spendstream.worker.schema import migrate

tokens_app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)

LIST_COLUMNS = ["id", "name", "role", "teams", "state", "created_at", "created_by", "expires_at"]


def _store(settings: Settings) -> TokenStore:
    client = connect(settings.clickhouse.dsn, settings.clickhouse.database)
    migrate(client)
    return TokenStore(client)


@tokens_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="unique name (shown as the author of its actions)")],
    role: Annotated[Role, typer.Option(help="service, viewer, operator or admin")],
    team: Annotated[
        list[str] | None, typer.Option(help="limit to this team (repeatable; default: all)")
    ] = None,
    expires: Annotated[str | None, typer.Option(help="lifetime, e.g. 90d (default: none)")] = None,
    config: ConfigOption = None,
) -> None:
    """Create a token and print its secret (shown once; only a hash is stored)."""
    settings = settings_or_exit(config)
    teams = list(team or [])
    api = worker_api(settings)
    # Errors escape to the root command's one mapping (cli/errors.py): a refusal of the API is
    # 1, a bad request 2, unavailable 3 (a 429 too), a 5xx 4.
    if api is not None:
        body = {"name": name, "role": str(role), "teams": teams, "expires": expires}
        created: dict[str, Any] = api.post("/tokens", body)
        secret = str(created["token"])
    else:
        try:
            lifetime = parse_duration(expires) if expires else None
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--expires") from None
        now = datetime.now(UTC)
        record, secret = _store(settings).create(
            name,
            role,
            teams,
            now + lifetime if lifetime else None,
            created_by=f"cli:{getpass.getuser()}",
            now=now,
        )
        created = record.public(now)
    scope = ", ".join(created["teams"]) or "every team"
    typer.echo(
        f"token {created['name']!r} ({created['role']}, {scope}) created; "
        "its secret follows and is not shown again:",
        err=True,
    )
    typer.echo(secret)


@tokens_app.command("list")
def list_tokens(config: ConfigOption = None, output: OutputOption = OutputFormat.table) -> None:
    """Every token with its role, teams and state (never the secret)."""
    settings = settings_or_exit(config)
    api = worker_api(settings)
    if api is not None:
        shown: list[dict[str, Any]] = api.get("/tokens")
    else:
        now = datetime.now(UTC)
        shown = [record.public(now) for record in _store(settings).all()]
    rows = [[t[c] if c != "teams" else ", ".join(t[c]) for c in LIST_COLUMNS] for t in shown]
    emit(QueryResult(list(LIST_COLUMNS), rows), output, "API tokens")


@tokens_app.command("revoke")
def revoke(
    name_or_id: Annotated[str, typer.Argument(help="token name or id")],
    config: ConfigOption = None,
) -> None:
    """Revoke a token now (the worker stops accepting it within [api] auth_cache_s)."""
    settings = settings_or_exit(config)
    api = worker_api(settings)
    if api is not None:
        revoked = api.request("DELETE", f"/tokens/{name_or_id}")
    else:
        now = datetime.now(UTC)
        revoked = [r.public(now) for r in _store(settings).revoke(name_or_id, now=now)]
    for record in revoked:
        typer.echo(f"revoked {record['name']} ({record['id']})")


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
    config: ConfigOption = None,
) -> None:
    """Serve the HTTP API standalone against the configured ClickHouse (e.g. an http:// DSN):
    every route of the worker's API but HTTP ingest."""
    import uvicorn

    from spendstream.api.server import server_config
    from spendstream.worker.api import build_api
    from spendstream.worker.clients import Clients
    from spendstream.worker.files import load_worker_config

    settings = settings_or_exit(config)
    owner = running_worker_url(settings)
    if owner is not None:
        fail(f"a worker ({owner}) holds the chDB directory and serves the API already")
    try:
        files = load_worker_config(settings)
    except ConfigError as exc:
        fail(str(exc))
    ch = settings.clickhouse
    with Clients(ch.dsn, ch.database) as clients:
        migrate(clients.open())
        api = build_api(settings, files.alerting, files.pricer, files.quotas, clients, host)
        api.start(settings)
        console.print(f"serving the API on http://{host}:{port}/api/v1, the dashboard on /")
        try:
            uvicorn.Server(server_config(api.app, host, port, settings.api.trusted_proxies)).run()
        finally:
            api.close()
