"""The reconciliation route under FastAPI: read permission, team scoping, JSON amounts."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from fastapi.testclient import TestClient

from spendstream.auth.roles import Principal, Role
from spendstream.pricing import default_pricer
from spendstream.reconcile.http import reconcile_router
from spendstream.reconcile.ledger_side import AccountMap
from spendstream.reconcile.providers import parse_pages
from spendstream.reconcile.store import InvoiceStore
from spendstream.sinks.access import ClientReader
from tests.support.http_app import TokenAuthenticator
from tests.support.ledger_data import fill_ledger
from tests.support.reconcile_data import PROJECTS, saved_reports, true_traffic, what_we_logged

pytestmark = pytest.mark.integration

TOKENS = {
    "admin-token": Principal("admin", Role.ADMIN),
    "search-token": Principal("search-viewer", Role.VIEWER, frozenset({"search"})),
    "ingest-token": Principal("svc", Role.SERVICE),
}


def test_variance_route_is_read_only_and_team_scoped(ledger_client: Client, tmp_path: Path) -> None:
    true = true_traffic()
    logged, _ = what_we_logged(true)
    fill_ledger(ledger_client, logged)
    store = InvoiceStore(ledger_client)
    for name, pages in saved_reports(true).items():
        store.load(parse_pages(name.split("-")[0], [(name, page) for page in pages]), name)
    accounts = {"openai": AccountMap(PROJECTS)}
    app = FastAPI()
    app.state.authenticator = TokenAuthenticator(TOKENS)
    router = reconcile_router(lambda: ClientReader(ledger_client), default_pricer(), accounts)
    app.include_router(router, prefix="/api/v1")
    client = TestClient(app)
    url = "/api/v1/reconcile/variance?since=2026-11-02&until=2026-11-05&by=project"

    def get(token: str, path: str = url) -> dict:  # type: ignore[type-arg]
        response = client.get(path, headers={"Authorization": f"Bearer {token}"})
        return {"status": response.status_code, "body": response.json()}

    full = get("admin-token")
    assert full["status"] == 200
    rows = full["body"]["rows"]
    assert {r["project"] for r in rows} == {
        "(unmapped)", "proj_search (team=search)", "proj_support (team=support)", "",
    }  # fmt: skip
    total = rows[-1]
    parts = ("price_drift", "never_seen", "unpriced", "hidden", "unexplained")
    assert sum(Decimal(total[p]) for p in parts) == Decimal(total["difference_usd"])

    scoped = get("search-token")
    assert scoped["status"] == 200
    mine = scoped["body"]["rows"]
    assert [r["project"] for r in mine] == ["proj_search (team=search)", ""]
    search = next(r for r in rows if r["project"] == "proj_search (team=search)")
    assert mine[0] == search and mine[-1]["difference_usd"] == search["difference_usd"]

    assert get("ingest-token")["status"] == 403
    assert get("nobody")["status"] == 401
    teams = get("admin-token", url.replace("by=project", "by=team"))["body"]["rows"]
    assert [r["team"] for r in teams] == ["(unmapped)", "search", "support", "TOTAL"]
    assert teams[1]["difference_usd"] == search["difference_usd"]
    bad = get("admin-token", url.replace("by=project", "by=user"))
    assert bad["status"] == 400 and "by=" in bad["body"]["detail"]
