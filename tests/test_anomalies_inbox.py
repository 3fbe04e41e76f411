"""The anomaly inbox over real chDB: state changes by role, audited with who and when; team
scoping of lists and changes; the detector's end never overwrites a person's dismissal."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from fastapi.testclient import TestClient

from spendstream.anomalies import AnomalyRule, store
from spendstream.anomalies.episodes import Episode
from spendstream.anomalies.http import anomalies_router
from spendstream.api.errors import install_error_mapping
from spendstream.auth.roles import Principal, Role
from spendstream.sinks.access import ClientReader
from tests.support.http_app import TokenAuthenticator

AT = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
TOKENS = {
    "viewer": Principal("vic", Role.VIEWER),
    "op-alpha": Principal("ola", Role.OPERATOR, frozenset({"alpha"})),
    "op": Principal("oz", Role.OPERATOR),
    "admin": Principal("ada", Role.ADMIN),
}


def episode(name: str, team: str) -> Episode:
    return Episode(
        episode_id=name,
        rule="per-team",
        group=(("team", team),),
        teams=(team,),
        started_at=AT,
        last_anomalous_at=AT,
        ended_at=None,
        expected_usd=Decimal("1.5"),
        observed_usd=Decimal("9.25"),
        peak_delta_usd=Decimal("7.75"),
        method="seasonal",
        drivers=("80 % feature=reply, where requests grew 6×",),
        detected_at=AT + timedelta(hours=1, minutes=2),
        version=1,
    )


@pytest.fixture
def api(ledger_client: Client) -> TestClient:
    for name, team in (("ep-alpha", "alpha"), ("ep-beta", "beta")):
        store.open_episode(ledger_client, episode(name, team))
    app = FastAPI()
    app.state.authenticator = TokenAuthenticator(TOKENS)
    install_error_mapping(app)
    rules = [AnomalyRule.model_validate({"name": "per-team", "group_by": ["team"]})]
    app.include_router(anomalies_router(ClientReader(ledger_client), lambda: ledger_client, rules))
    return TestClient(app)


def call(api: TestClient, method: str, path: str, token: str, **body: str) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"}
    answer = api.request(method, f"/api/v1{path}", headers=headers, json=body or None)
    return answer.status_code, answer.json()


def test_listing_needs_a_token_and_is_team_scoped(api: TestClient) -> None:
    assert api.get("/api/v1/anomalies").status_code == 401
    status, every = call(api, "GET", "/anomalies", "viewer")
    assert status == 200
    assert sorted(e["episode_id"] for e in every["anomalies"]) == ["ep-alpha", "ep-beta"]
    first = every["anomalies"][0]
    assert (first["state"], first["state_by"], first["observed_usd"]) == (
        "open",
        "spendstream",
        "9.25",
    )
    _, alpha = call(api, "GET", "/anomalies", "op-alpha")
    assert [e["episode_id"] for e in alpha["anomalies"]] == ["ep-alpha"]
    assert call(api, "GET", "/anomalies/ep-beta", "op-alpha")[0] == 404


def test_state_changes_by_role_are_audited(api: TestClient, ledger_client: Client) -> None:
    assert call(api, "POST", "/anomalies/ep-alpha", "viewer", state="acknowledged")[0] == 403
    assert call(api, "POST", "/anomalies/ep-beta", "op-alpha", state="dismissed")[0] == 404
    assert call(api, "POST", "/anomalies/ep-alpha", "op", state="snoozed")[0] == 422
    status, done = call(api, "POST", "/anomalies/ep-alpha", "op-alpha", state="acknowledged")
    assert (status, done["state"], done["state_by"]) == (200, "acknowledged", "ola")
    status, done = call(
        api, "POST", "/anomalies/ep-alpha", "admin", state="dismissed", reason="launch day"
    )
    assert (status, done["state"], done["state_by"]) == (200, "dismissed", "ada")
    _, shown = call(api, "GET", "/anomalies/ep-alpha", "viewer")
    assert [(h["state"], h["by"], h["reason"]) for h in shown["history"]] == [
        ("acknowledged", "ola", ""),
        ("dismissed", "ada", "launch day"),
    ]
    audit = ledger_client.query(
        "SELECT state, previous_state, actor, role FROM anomaly_actions ORDER BY at"
    ).result_rows
    assert audit == [
        ("acknowledged", "open", "ola", "operator"),
        ("dismissed", "acknowledged", "ada", "admin"),
    ]
    # The detector ends the episode later: a dismissal stays; the acknowledged one resolves.
    call(api, "POST", "/anomalies/ep-beta", "op", state="acknowledged")
    reader = ClientReader(ledger_client)
    later = datetime.now(UTC) + timedelta(seconds=5)
    for found in store.read_episodes(reader):
        store.update_episode(ledger_client, replace(found, ended_at=later, version=2))
    _, every = call(api, "GET", "/anomalies", "viewer")
    states = {e["episode_id"]: (e["state"], e["state_by"]) for e in every["anomalies"]}
    assert states == {"ep-alpha": ("dismissed", "ada"), "ep-beta": ("resolved", "spendstream")}
    _, only = call(api, "GET", "/anomalies?state=resolved", "viewer")
    assert [e["episode_id"] for e in only["anomalies"]] == ["ep-beta"]


def test_silencing_a_rule_through_the_api(api: TestClient, ledger_client: Client) -> None:
    path = "/anomaly-rules/per-team/silence"
    assert call(api, "POST", path, "viewer", duration="2h")[0] == 403
    assert call(api, "POST", path, "op-alpha", duration="2h")[0] == 404  # every team's rule
    assert call(api, "POST", "/anomaly-rules/nope/silence", "op", duration="2h")[0] == 404
    assert call(api, "POST", path, "op", duration="soon")[0] == 400
    status, body = call(api, "POST", path, "op", duration="2h", reason="load test")
    assert status == 200 and body["created_by"] == "oz"
    assert call(api, "POST", path, "admin", action="unsilence")[0] == 200
    audit = ledger_client.query(
        "SELECT action, actor, reason FROM anomaly_rule_actions ORDER BY at"
    ).result_rows
    assert audit == [("silence", "oz", "load test"), ("unsilence", "ada", "")]
