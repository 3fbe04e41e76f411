"""The anomaly inbox page in headless Chromium: an episode the detector opened on a real ledger,
with Explain's drivers; an operator acknowledges it from the page; a team viewer sees its team
only and no buttons. Screenshots as tests.support.browser.screenshot_dir says."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi import APIRouter

from spendstream.anomalies import AnomalyDetector, store
from spendstream.anomalies.http import anomalies_router
from spendstream.auth.roles import Principal, Role
from spendstream.dashboard.http import dashboard_api_router
from spendstream.dashboard.pages import dashboard_router
from spendstream.notifications.outbox import Outbox
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from tests.support.browser import chromium, log_in, screenshot_dir
from tests.support.http_app import ServedApp
from tests.support.ledger_data import fill_ledger
from tests.support.ledger_template import copy_template
from tests.test_anomalies_episodes import HOUR, RULE, SETTLED, SPIKE, traffic
from tests.test_explain_browser import SessionAuthenticator

pytestmark = pytest.mark.integration

TOKENS = {
    "op-secret": Principal("oncall-ann", Role.OPERATOR),
    "search-secret": Principal("search-viewer", Role.VIEWER, frozenset({"search"})),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, migrated_template: Path) -> Iterator[str]:
    path = copy_template(migrated_template, tmp_path_factory.mktemp("anomalies") / "ch")
    client = connect(f"chdb://{path}", "spendstream")
    fill_ledger(client, traffic())
    AnomalyDetector([RULE], Outbox(client)).run(SPIKE + HOUR + SETTLED)
    (opened,) = store.read_episodes(ClientReader(client))
    search = replace(
        opened,
        episode_id="search-episode",
        group=(("team", "search"),),
        teams=("search",),
        started_at=SPIKE - 30 * HOUR,
        last_anomalous_at=SPIKE - 28 * HOUR,
        ended_at=SPIKE - 25 * HOUR,
        observed_usd=Decimal("0.4105"),
        drivers=("100 % a new feature autofill",),
    )
    store.open_episode(client, search)
    reader = ClientReader(client)
    api = APIRouter()
    api.include_router(anomalies_router(reader, lambda: client))
    api.include_router(dashboard_api_router(reader, []), prefix="/api/v1")
    with ServedApp(SessionAuthenticator(TOKENS), api, dashboard_router()) as app:
        yield app.url
    client.close()


def test_the_inbox_page(served: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        log_in(page, served, "op-secret", "/anomalies")
        page.fill("#since", "3650d")
        page.click("#anomalies-form button[type=submit]")
        page.wait_for_selector("table.anomalies button[data-state=acknowledged]")
        table = page.inner_text("#anomalies")
        assert "team=support" in table and "team=search" in table
        assert "requests" in table  # Explain's top driver of the support spike
        page.fill("table.anomalies .reason", "looking at support's bot")
        page.click("table.anomalies button[data-state=acknowledged]")
        page.wait_for_selector("text=by oncall-ann")
        assert "acknowledged" in page.inner_text("#anomalies")
        page.screenshot(
            path=str(screenshot_dir(tmp_path_factory) / "anomalies.png"), full_page=True
        )

        viewer = browser.new_page()
        log_in(viewer, served, "search-secret", "/anomalies")
        viewer.fill("#since", "3650d")
        viewer.click("#anomalies-form button[type=submit]")
        viewer.wait_for_selector("text=team=search")
        shown = viewer.inner_text("#anomalies")
        assert "team=support" not in shown and "resolved" in shown
        assert viewer.query_selector("table.anomalies button") is None
