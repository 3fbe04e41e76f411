"""Commands that ask a running worker map its answers as every command does (cli/errors.py:
429/5xx are unavailable/bug, not "failed"), and let the worker judge what it knows (its budgets)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from fastapi import APIRouter, HTTPException
from typer.testing import CliRunner, Result

from spendstream.alerts.config import Alerting, AlertsConfig, BudgetConfig
from spendstream.alerts.silences import Subjects
from spendstream.api.common import ApiDeps
from spendstream.api.routes_alerts import alerts_router
from spendstream.auth.roles import Principal, Role
from spendstream.cli.errors import EXIT_BUG, EXIT_FAILED, EXIT_UNAVAILABLE, EXIT_USAGE
from spendstream.cli.root import app
from spendstream.notifications.outbox import Outbox
from spendstream.notifications.records import Silence
from spendstream.worker.api import store_silence
from tests.support.http_app import ServedApp, TokenAuthenticator

WORKER_BUDGETS = ("search-daily",)  # in the worker's config, not in the CLI's
WORKER_QUOTAS = ("q-user",)


def worker_answers() -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    @router.get("/tokens")
    async def tokens() -> None:
        raise HTTPException(429, "too many failed authentications", {"Retry-After": "7"})

    @router.post("/tokens")
    async def create() -> None:
        raise HTTPException(500, "internal error (error id 0123)")

    @router.delete("/tokens/{name}")
    async def revoke(name: str) -> None:
        raise HTTPException(404, f"no token named {name!r}")

    return router


def worker_alerts(silenced: list[dict[str, Any]]) -> APIRouter:
    """The worker's own budgets and silences routes, over its budgets (WORKER_BUDGETS)."""
    budgets = tuple(BudgetConfig(name=name, limit=Decimal(10)) for name in WORKER_BUDGETS)
    alerting = Alerting(budgets=budgets, alerts=AlertsConfig(), source="worker.toml")

    class Store:
        """The outbox's part a silence uses: nothing stored yet, silences recorded."""

        def has_subject(self, subject: str) -> bool:
            return False

        def put_silence(self, silence: Silence) -> None:
            silenced.append(silence.model_dump(mode="json"))

    store = cast(Outbox, Store())
    deps = SimpleNamespace(
        alerting=alerting,
        silence=store_silence(store, Subjects.of(alerting, WORKER_QUOTAS)),
    )
    router = APIRouter(prefix="/api/v1")
    router.include_router(alerts_router(cast(ApiDeps, deps)))
    return router


@pytest.fixture
def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """A stand-in worker announced for the CLI's chDB directory; yields the silences it got."""
    directory = tmp_path / "clickhouse"
    (tmp_path / "spendstream.toml").write_text(f'[clickhouse]\ndsn = "chdb://{directory}"\n')
    silenced: list[dict[str, Any]] = []
    operator = TokenAuthenticator({"t": Principal("ops", Role.OPERATOR)})
    with ServedApp(operator, worker_answers(), worker_alerts(silenced)) as served:
        state = tmp_path / "clickhouse.worker.json"
        state.write_text(json.dumps({"pid": os.getpid(), "url": served.url}))
        monkeypatch.chdir(tmp_path)
        yield silenced


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"SPENDSTREAM_TOKEN": "t", "COLUMNS": "200"})


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (["tokens", "list"], EXIT_UNAVAILABLE, "retry in 7 s"),
        (["tokens", "create", "--name", "x", "--role", "viewer"], EXIT_BUG, "error id 0123"),
        (["tokens", "revoke", "ghost"], EXIT_FAILED, "no token named 'ghost'"),
    ],
)
def test_token_commands_use_the_common_exit_codes(args: list[str], code: int, said: str) -> None:
    done = run(*args)
    assert done.exit_code == code, done.output
    assert said in done.output


def test_the_worker_judges_which_budgets_may_be_silenced(worker: list[dict[str, Any]]) -> None:
    done = run("alerts", "silence", "search-daily", "--for", "2h")
    assert done.exit_code == 0, done.output
    assert "search-daily: silenced until " in done.output
    assert run("alerts", "unsilence", "search-daily").exit_code == 0
    # a quota is a subject too (its block/unblock notices), known to the worker only
    assert run("alerts", "silence", "q-user", "--for", "1h").exit_code == 0
    assert [(s["budget"], s["reason"][:10]) for s in worker] == [
        ("search-daily", ""),
        ("search-daily", "unsilenced"),
        ("q-user", ""),
    ]
    assert all(s["created_by"] == "ops" for s in worker)  # the token's name
    # an unknown name is a usage error (exit 2) through the worker as without one; the
    # worker's 404 names the budgets and quotas it knows
    unknown = run("alerts", "silence", "nope")
    assert unknown.exit_code == EXIT_USAGE, unknown.output
    said = " ".join(unknown.output.split())
    assert "no budget named 'nope'" in said
    assert "budgets: search-daily; quotas: q-user" in said
    assert run("alerts", "unsilence", "nope").exit_code == EXIT_USAGE
