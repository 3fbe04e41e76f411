"""The issue's story on a real ledger: prompt growth on one feature and a new runaway user, told
in one sentence; the API (team scoping, 403, 400) and ``spendstream explain``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from spendstream.api.routes_explain import explain_router
from spendstream.auth.roles import Principal, Role
from spendstream.events import UsageEvent
from spendstream.explain import Scope, default_periods, explain
from spendstream.explain.decompose import INPUT, NEW
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from tests.support.cli import spendstream, spendstream_here
from tests.support.http_app import ServedApp, TokenAuthenticator
from tests.support.ledger_data import fill_ledger, write_config
from tests.support.ledger_template import copy_template

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
TOKENS = {
    "all": Principal("all", Role.VIEWER),
    "support": Principal("support-viewer", Role.VIEWER, frozenset({"support"})),
}


def calls(
    start: datetime,
    count: int,
    team: str,
    feature: str,
    user: str,
    model: tuple[str, str],
    input_tokens: int,
    output_tokens: int = 300,
) -> list[UsageEvent]:
    span = timedelta(hours=23)
    return [
        UsageEvent(
            event_time=start + span * i / count,
            provider=model[0],
            model=model[1],
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            tags={"team": team, "app": "helpdesk", "feature": feature, "user": user, "env": "prod"},
        )
        for i in range(count)
    ]


SONNET, MINI = ("anthropic", "claude-sonnet-4-5"), ("openai", "gpt-4o-mini")


def story() -> list[UsageEvent]:
    (since, _until), (vs_since, _vs_until) = default_periods(NOW)
    events: list[UsageEvent] = []
    for start, prompt, ranked in ((vs_since, 2_000, 50), (since, 5_800, 80)):  # prompts x2.9
        for user in ("u1", "u2", "u3", "u4", "u5"):
            events += calls(start, 40, "support", "reply-draft", user, SONNET, prompt)
            events += calls(start, 30, "support", "triage", user, MINI, 1_500)
        events += calls(start, ranked, "search", "ranking", "s1", SONNET, 9_000)
    events += calls(since, 40, "support", "reply-draft", "u-77", SONNET, 5_800)  # a new user
    return events


@pytest.fixture(scope="module")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory, migrated_template: Path) -> Path:
    path = copy_template(migrated_template, tmp_path_factory.mktemp("explain_story") / "clickhouse")
    client = connect(f"chdb://{path}", "spendstream")
    fill_ledger(client, story())
    client.close()
    return path


@pytest.fixture(scope="module")
def client(chdb_dir: Path) -> Iterator[Any]:
    found = connect(f"chdb://{chdb_dir}", "spendstream")
    yield found
    found.close()


def test_the_sentence_names_the_feature_the_model_and_the_new_user(client: Any) -> None:
    period, baseline = default_periods(NOW)
    answer = explain(ClientReader(client), Scope({"team": ["support"]}), period, baseline)
    assert sum((d.amount for d in answer.drivers), Decimal(0)) == answer.delta > 0
    assert [h.driver for h in answer.highlights] == [INPUT, NEW]
    assert answer.highlights[0].path == (("feature", "reply-draft"), ("model", "claude-sonnet-4-5"))
    text = answer.sentence
    assert text.startswith("support +$") and "vs the same 24 h last week: " in text
    assert (
        "feature=reply-draft on claude-sonnet-4-5, where input tokens per request grew 2.9×" in text
    )
    assert "a new user u-77" in text
    assert "search" not in text and "ranking" not in text
    top = answer.contributors[0]
    assert top.path == (("team", "support"),) and top.share == 1


@pytest.fixture(scope="module")
def server(client: Any) -> Iterator[str]:
    api = APIRouter(prefix="/api/v1")
    api.include_router(explain_router(ClientReader(client)))
    with ServedApp(TokenAuthenticator(TOKENS), api) as served:
        yield served.url + "/api/v1/explain"


def get(url: str, token: str | None, **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(url, headers=headers, params=params, timeout=60)


def test_api_scopes_to_the_tokens_team(server: str) -> None:
    period, baseline = default_periods(NOW)
    window = {"since": period[0].isoformat(), "until": period[1].isoformat()}
    everything = get(server, "all", **window).json()
    scoped = get(server, "support", **window).json()
    assert "ranking" in json.dumps(everything) and "ranking" not in json.dumps(scoped)
    assert "search" not in json.dumps(scoped)
    drivers = [Decimal(d["amount_usd"]) for d in scoped["drivers"]]
    assert sum(drivers, Decimal(0)) == Decimal(scoped["delta_usd"])
    assert scoped["vs_since"] == baseline[0].isoformat()
    forbidden = get(server, "support", filter="team=search", **window)
    assert forbidden.status_code == 403
    assert get(server, None, **window).status_code == 401
    assert get(server, "all", vs_since=baseline[0].isoformat(), **window).status_code == 400
    assert get(server, "all", filter="bad name=x", **window).status_code == 400
    same = get(server, "all", vs="7d", filter="team=support", **window).json()
    assert same["delta_usd"] == scoped["delta_usd"]


def test_cli_explain(chdb_dir: Path, client: Any, tmp_path: Path) -> None:
    client.close()  # chDB: one process per directory; the CLI opens it
    config = write_config(tmp_path, chdb_dir)
    period, _baseline = default_periods(NOW)
    args = ["explain", "--config", str(config), "--since", period[0].isoformat()]
    args += ["--until", period[1].isoformat(), "--filter", "team=support"]
    shown = spendstream(*args, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "a new user u-77" in shown.stdout and "input tokens per request" in shown.stdout
    as_json = spendstream_here(*args, "--format", "json", cwd=tmp_path)
    assert json.loads(as_json.stdout)["sentence"].startswith("support +$")
    bad = spendstream_here("explain", "--config", str(config), "--vs-since", "7d", cwd=tmp_path)
    assert bad.returncode == 2 and "vs_until" in bad.stderr
