"""The "What changed" page in headless Chromium over the story's ledger: the sentence, the
driver bars (their exact amounts add up to the change) and the tree; a team viewer sees its
team only. Screenshots as tests.support.browser.screenshot_dir says."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi import APIRouter, Request

from spendstream.api.routes_explain import explain_router
from spendstream.auth.authenticator import SESSION_COOKIE
from spendstream.auth.roles import Principal, Role
from spendstream.dashboard.http import dashboard_api_router
from spendstream.dashboard.pages import dashboard_router
from spendstream.explain import default_periods
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from tests.support.browser import chromium, log_in, screenshot_dir
from tests.support.http_app import ServedApp, TokenAuthenticator
from tests.support.ledger_data import fill_ledger
from tests.support.ledger_template import copy_template
from tests.test_explain_story import NOW, story

pytestmark = pytest.mark.integration

TOKENS = {
    "admin-secret": Principal("admin", Role.ADMIN),
    "search-secret": Principal("search-viewer", Role.VIEWER, frozenset({"search"})),
}


class SessionAuthenticator(TokenAuthenticator):
    """Bearer tokens, or the dashboard's session cookie holding one (as the real API)."""

    def authenticate(self, request: Request) -> Principal:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie and cookie in self.tokens and "authorization" not in request.headers:
            return self.tokens[cookie]
        return super().authenticate(request)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, migrated_template: Path) -> Iterator[str]:
    path = copy_template(migrated_template, tmp_path_factory.mktemp("changes") / "ch")
    client = connect(f"chdb://{path}", "spendstream")
    fill_ledger(client, story())
    reader = ClientReader(client)
    api = APIRouter(prefix="/api/v1")
    api.include_router(explain_router(reader))
    api.include_router(dashboard_api_router(reader, []))
    with ServedApp(SessionAuthenticator(TOKENS), api, dashboard_router()) as app:
        yield app.url
    client.close()


def changes_url(base: str) -> str:
    (since, until), _baseline = default_periods(NOW)
    return "/changes?" + urlencode(
        {"since": since.isoformat(), "until": until.isoformat(), "vs": "7d", "filters": ""}
    )


def test_what_changed_page(served: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        log_in(page, served, "admin-secret", "/changes")
        page.goto(served + changes_url(served).replace("&filters=", "&filters=team%3Dsupport"))
        page.wait_for_selector("#changes-sentence")
        sentence = page.inner_text("#changes-sentence")
        assert sentence.startswith("support +$")
        assert "feature=reply-draft on claude-sonnet-4-5" in sentence and "u-77" in sentence
        amounts = [
            Decimal(str(node.get_attribute("data-exact")))
            for node in page.query_selector_all(".driver .num[data-exact]")
        ]
        change = page.query_selector_all(".card .value")[2].get_attribute("data-exact")
        assert amounts and sum(amounts, Decimal(0)) == Decimal(str(change))
        assert "team=support" in page.inner_text("#what-changed table")
        shots = screenshot_dir(tmp_path_factory)
        page.screenshot(path=str(shots / "what-changed.png"), full_page=True)

        viewer: Any = browser.new_page()
        log_in(viewer, served, "search-secret", "/changes")
        viewer.goto(served + changes_url(served))
        viewer.wait_for_selector("#changes-sentence")
        shown = viewer.inner_text("#what-changed")
        assert "team=search" in shown and "support" not in shown and "u-77" not in shown


def test_a_foreign_team_filter_shows_the_refusal(served: str) -> None:
    with chromium() as browser:
        page = browser.new_page()
        log_in(page, served, "search-secret", "/changes")
        page.goto(served + changes_url(served).replace("&filters=", "&filters=team%3Dsupport"))
        page.wait_for_selector("#error:not([hidden])")
        assert "may not read team 'support'" in page.inner_text("#error")


def test_the_overview_holds_the_panel() -> None:
    overview = (
        Path(__file__).resolve().parent.parent / "spendstream/dashboard/static/overview.html"
    ).read_text()
    assert 'id="what-changed"' in overview and "/static/changes.js" in overview
