"""The insights router on a FastAPI app served by uvicorn on loopback (bearer tokens, team
scoping, errors), and ``spendstream insights`` through the real command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from spendstream.auth.roles import Principal, Role
from spendstream.config import InsightsSettings
from spendstream.insights import Context, Window, run_insight
from spendstream.insights.http import insights_router
from spendstream.pricing import default_pricer
from spendstream.sinks.access import ClientReader, jsonable
from spendstream.sinks.client import connect
from tests.support.cli import spendstream, spendstream_here
from tests.support.http_app import ServedApp, TokenAuthenticator
from tests.support.insight_data import END, START, generate
from tests.support.ledger_data import fill_ledger, write_config
from tests.support.ledger_template import copy_template

pytestmark = pytest.mark.integration

TOKENS = {
    "all": Principal("all", Role.VIEWER),
    "growth": Principal("growth-viewer", Role.VIEWER, frozenset({"growth"})),
    "ingest": Principal("svc", Role.SERVICE),
}


@pytest.fixture(scope="module")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory, migrated_template: Path) -> Path:
    path = copy_template(migrated_template, tmp_path_factory.mktemp("insights_api") / "clickhouse")
    client = connect(f"chdb://{path}", "spendstream")
    fill_ledger(client, generate())
    client.close()
    return path


@pytest.fixture
def server(chdb_dir: Path) -> Iterator[str]:
    client = connect(f"chdb://{chdb_dir}", "spendstream")
    settings = InsightsSettings(batch_features=["nightly"])
    router = insights_router(ClientReader(client), default_pricer(), settings)
    with ServedApp(TokenAuthenticator(TOKENS), router) as served:
        yield served.url
    client.close()


def get(url: str, token: str | None, **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(url, headers=headers, params=params, timeout=60)


def direct(chdb_dir: Path, name: str, **window: Any) -> list[list[Any]]:
    client = connect(f"chdb://{chdb_dir}", "spendstream")
    try:
        context = Context(
            ClientReader(client),
            default_pricer(),
            InsightsSettings(batch_features=["nightly"]),
            Window(START, END, **window),
        )
        return list(jsonable(run_insight(name, context).rows))
    finally:
        client.close()


def test_router_answers_scoped_to_the_callers_teams(server: str) -> None:
    url = f"{server}/api/v1/insights/batch"
    window = {"since": START.isoformat(), "until": END.isoformat()}
    everything = get(url, "all", **window)
    assert everything.status_code == 200, everything.text
    body = everything.json()
    assert body["insight"] == "batch" and "saving_usd" in body["columns"]
    features = {row[0] for row in body["rows"]}
    assert features == {"nightly", "report"}
    growth = get(f"{server}/api/v1/insights/rightsize", "growth", **window).json()
    assert {row[0] for row in growth["rows"]} == {"nightly", "report"}  # team growth only
    assert "never a statement about quality" in growth["note"]
    scoped = get(f"{server}/api/v1/insights/truncation", "all", scope="feature=draft", **window)
    assert {row[0] for row in scoped.json()["rows"]} == {"draft"}
    assert get(f"{server}/api/v1/insights", "all").json()["insights"].keys() >= {"caching"}


def test_router_errors_say_what_to_change(server: str) -> None:
    window = {"since": START.isoformat(), "until": END.isoformat()}
    assert get(f"{server}/api/v1/insights/batch", None, **window).status_code == 401
    forbidden = get(f"{server}/api/v1/insights/batch", "ingest", **window)
    assert forbidden.status_code == 403 and "read" in forbidden.json()["detail"]
    missing = get(f"{server}/api/v1/insights/nope", "all", **window)
    assert missing.status_code == 404 and "rightsize" in missing.json()["detail"]
    bad = get(f"{server}/api/v1/insights/batch", "all", scope="team", **window)
    assert bad.status_code == 400 and "key=value" in bad.json()["detail"]
    backwards = get(
        f"{server}/api/v1/insights/batch", "all", since=END.isoformat(), until=START.isoformat()
    )
    assert backwards.status_code == 400


def test_cli_json_equals_the_insight(chdb_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, chdb_dir, '[insights]\nbatch_features = ["nightly"]\n')
    args = ["--since", START.isoformat(), "--until", END.isoformat(), "-c", str(config)]
    done = spendstream("insights", "caching", *args, "-f", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    expected = direct(chdb_dir, "caching")
    assert [list(line.values()) for line in lines] == expected
    assert sum(Decimal(line["usd"]) for line in lines) > 0
    table = spendstream_here(
        "insights", "rightsize", *args, "--scope", "team=support", cwd=tmp_path
    )
    assert table.returncode == 0, table.stderr
    assert "claude-haiku-4-5" in table.stdout and "quality" in table.stdout
    wrong = spendstream_here("insights", "nope", *args, cwd=tmp_path)
    assert wrong.returncode == 2 and "rightsize" in wrong.stderr
