"""The dashboard in a real browser (headless Chromium) against a real worker: log in, every
page, filters and ranges, figures equal to ledger queries, team scoping, inert event text,
cookie and CSRF rules. Screenshots of each page land in the pytest tmp dir."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from spendstream.events import UsageEvent
from tests.support.api_env import ApiEnv, start_env, team_events
from tests.support.browser import chromium, log_in, usd, watched_page

pytestmark = pytest.mark.integration

XSS = "<img src=x onerror=alert(1)>"
# Alpha's users spend more than a cent a day (blocked keys); beta's quota is for beta's eyes only.
QUOTAS = """
[[quotas]]
name = "alpha-users"
scope = { team = "alpha" }
group_by = ["user"]
limit = "0.01"

[[quotas]]
name = "beta-users"
scope = { team = "beta" }
group_by = ["user"]
limit = "1000"
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, migrated_template: Path) -> Iterator[ApiEnv]:
    for env in start_env(tmp_path_factory.mktemp("dashboard"), migrated_template, QUOTAS):
        hostile = [
            UsageEvent.model_validate(
                {**e.model_dump(), "event_id": f"xss-{i}", "tags": {**e.tags, "app": XSS}}
            )
            for i, e in enumerate(team_events("alpha", 3))
        ]
        # One huge call takes team alpha over its 1000 USD budget: an alert for the alerts page.
        (big,) = team_events("alpha", 1)
        big = big.model_copy(update={"event_id": "big-0", "input_tokens": 500_000_000})
        env.publish([*hostile, big])
        env.worker.wait_for_ledger_count(env.published)
        yield env


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with watched_page(browser) as (page, problems):
        yield page
    assert problems == [], f"dialogs, script errors or CSP violations: {problems}"


def ledger_sum(env: ApiEnv, where: str, params: dict[str, object]) -> Decimal:
    sql = f"SELECT toString(sum(cost_total)) FROM ledger FINAL WHERE {where}"
    rows = env.worker.api().post("/sql", {"query": sql, "parameters": params})["rows"]
    return Decimal(rows[0][0])


def month_start() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-01 00:00:00")


def figure(page: Page, selector: str) -> tuple[str, Decimal]:
    node = page.locator(selector)
    node.and_(page.locator("[data-exact]")).wait_for()
    return node.inner_text(), Decimal(node.get_attribute("data-exact") or "nan")


def test_pages_need_a_session_and_send_a_strict_policy(env: ApiEnv) -> None:
    response = httpx.get(f"{env.worker.url}/explore?by=team", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fexplore%3Fby%3Dteam"
    login = httpx.get(f"{env.worker.url}/login")
    policy = login.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "<script>" not in login.text  # only external scripts
    assert httpx.get(f"{env.worker.url}/static/../app.py").status_code == 404


def test_admin_overview_matches_the_ledger(env: ApiEnv, page: Page, shots: Path) -> None:
    log_in(page, env.worker.url, env.tokens["admin"])
    cookie = next(c for c in page.context.cookies() if c["name"] == "spendstream_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    text, exact = figure(page, "#spend-month")
    expected = ledger_sum(env, "event_time >= {m:DateTime64(3)}", {"m": month_start()})
    assert exact == expected and text == usd(expected)
    assert page.locator("#coverage").inner_text() == "100.00%"
    page.locator("#top-team td").first.wait_for()
    teams = page.locator("#top-team tbody tr td:first-child").all_inner_texts()
    assert sorted(teams) == ["alpha", "beta"]
    for team in teams:
        row = page.locator("#top-team tbody tr", has_text=team).locator("[data-exact]")
        assert Decimal(row.get_attribute("data-exact") or "nan") == ledger_sum(
            env,
            "team = {t:String} AND event_time >= {m:DateTime64(3)}",
            {"t": team, "m": month_start()},
        )
    page.locator("#budgets tbody tr").nth(1).wait_for()
    assert page.locator("#as-of").inner_text() != "…"
    # Every page's navigation is one line on a 1280 px screen (it wrapped to two once).
    assert page.viewport_size is not None and page.viewport_size["width"] == 1280
    tops = page.eval_on_selector_all("header nav a", "links => links.map(a => a.offsetTop)")
    assert len(tops) >= 11 and len(set(tops)) == 1, tops
    page.screenshot(path=str(shots / "overview.png"), full_page=True)


def test_explore_filters_ranges_and_csv(env: ApiEnv, page: Page, shots: Path) -> None:
    log_in(page, env.worker.url, env.tokens["admin"], "/explore")
    page.fill("#by", "model")
    page.fill("#filters", "team=alpha")
    page.select_option("#granularity", "minute")
    page.fill("#since", "3h")
    page.click("#explore-form button[type=submit]")
    page.wait_for_url("**by=model**")  # at once: the URL names the view before it is fetched
    page.locator("#chart svg rect, #error:not([hidden])").first.wait_for()
    assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
    text, exact = figure(page, "#total")
    expected = ledger_sum(env, "team = 'alpha' AND event_time >= now() - INTERVAL 3 HOUR", {})
    assert exact == expected and text == usd(expected)
    # The new chart replaces the previous one (by team) once its answer arrives.
    page.locator("#legend > span", has_text="gpt-4o").first.wait_for()
    series = page.locator("#legend > span").all_inner_texts()
    assert sorted(series) == ["gpt-4o", "gpt-4o-mini"]
    with page.expect_download() as download:
        page.click("#csv")
    csv = Path(download.value.path()).read_text().splitlines()
    assert csv[0].startswith("period,model,cost_usd,events")
    assert len(csv) - 1 == page.locator("#table tbody tr").count()
    page.screenshot(path=str(shots / "explore.png"), full_page=True)


def test_event_text_renders_as_text(env: ApiEnv, page: Page) -> None:
    log_in(page, env.worker.url, env.tokens["admin"], "/explore?by=app&since=3h&granularity=hour")
    cell = page.locator("#table td", has_text=XSS).first
    cell.wait_for()
    assert cell.inner_text() == XSS
    assert page.locator("main img").count() == 0
    assert XSS in page.locator("#legend").inner_text()


def test_team_viewer_never_sees_another_team(env: ApiEnv, page: Page, shots: Path) -> None:
    log_in(page, env.worker.url, env.tokens["viewer-alpha"])
    text, exact = figure(page, "#spend-month")
    expected = ledger_sum(
        env, "team = 'alpha' AND event_time >= {m:DateTime64(3)}", {"m": month_start()}
    )
    assert exact == expected and text == usd(expected)
    page.locator("#top-team td").first.wait_for()
    assert page.locator("#top-team tbody td:first-child").all_inner_texts() == ["alpha"]
    page.screenshot(path=str(shots / "overview-viewer-alpha.png"), full_page=True)
    page.goto(f"{env.worker.url}/explore?by=team&since=30d&granularity=day")
    page.locator("#table td").first.wait_for()
    assert page.locator("#table tbody td:nth-child(2)").all_inner_texts() == ["alpha"]
    page.goto(f"{env.worker.url}/budgets")
    page.locator("#budgets tbody td").first.wait_for()
    assert "beta" not in page.locator("main").inner_text()
    page.goto(f"{env.worker.url}/explore?by=team&filters=team%3Dbeta")
    page.locator("#error").wait_for()
    assert "may not read team 'beta'" in page.locator("#error").inner_text()
    assert "beta" not in page.locator("#table").inner_text()


def test_budgets_alerts_prices_and_silence(env: ApiEnv, page: Page, shots: Path) -> None:
    log_in(page, env.worker.url, env.tokens["operator-alpha"], "/budgets")
    page.locator("#budgets tbody [data-exact]").first.wait_for()
    spend = Decimal(
        page.locator("#budgets tbody [data-exact]").first.get_attribute("data-exact") or "nan"
    )
    assert spend == ledger_sum(
        env, "team = 'alpha' AND event_time >= {m:DateTime64(3)}", {"m": month_start()}
    )
    burned = page.locator("#burndowns [data-budget=alpha-month] [data-exact]")
    burned.wait_for()
    assert Decimal(burned.get_attribute("data-exact") or "nan") == spend  # same figure
    assert page.locator("#burndowns [data-budget=alpha-month] svg polyline").count() == 1
    assert page.locator("#burndowns [data-budget=beta-month]").count() == 0
    page.screenshot(path=str(shots / "budgets.png"), full_page=True)
    deadline = time.monotonic() + 90
    while True:  # the alert service evaluates after the batch is written
        page.goto(f"{env.worker.url}/alerts")
        page.locator("#alerts tbody td").first.wait_for()
        if page.locator("#alerts tbody tr", has_text="alpha-month").count():
            break
        assert time.monotonic() < deadline, "no alert for alpha-month on the alerts page"
        page.wait_for_timeout(1000)
    row = page.locator("#alerts tbody tr", has_text="alpha-month").first
    assert "100%" in row.inner_text() and "firing" in row.inner_text()
    page.locator("#silence-box").wait_for()
    page.fill("#silence-reason", "browser test")
    page.click("#silence-form button[type=submit]")
    page.locator("#silence-result", has_text="silenced alpha-month until").wait_for()
    page.screenshot(path=str(shots / "alerts.png"), full_page=True)
    page.click("#unsilence")
    page.locator("#silence-result", has_text="unsilenced alpha-month").wait_for()
    page.goto(f"{env.worker.url}/prices")
    page.locator("#prices tbody td", has_text="gpt-4o-mini").first.wait_for()
    page.screenshot(path=str(shots / "prices.png"))  # the catalog is long: first screen
    page.click("#logout")
    page.wait_for_url("**/login")
    assert not [c for c in page.context.cookies() if c["name"] == "spendstream_session"]


def test_insights_page_shows_the_apis_rows(env: ApiEnv, page: Page, shots: Path) -> None:
    log_in(
        page,
        env.worker.url,
        env.tokens["viewer-all"],
        "/insights?insight=rightsize&since=1d&until=now",
    )
    page.locator("#table td.saving").first.wait_for()
    assert "never a statement about quality" in page.locator("#note").inner_text()
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()  # all traffic is 30 min old
    answer = env.call(
        "GET", "/insights/rightsize", env.tokens["viewer-all"], params={"since": since}
    )
    rows = [dict(zip(answer.json()["columns"], r, strict=True)) for r in answer.json()["rows"]]
    # one row per feature and model: its best candidate, the others inside the row
    best: dict[tuple[str, str], tuple[str, Decimal | None]] = {}
    others: dict[tuple[str, str], int] = {}
    for r in rows:
        group, saving = (r["feature"], r["model"]), dec(r["saving_usd"])
        if group not in best or (saving or Decimal(0)) > (best[group][1] or Decimal(0)):
            best[group] = (r["candidate"], saving)
        others[group] = others.get(group, -1) + (1 if r["candidate"] else 0)
    assert any(saving is not None and saving > 0 for _, saving in best.values())
    headers = page.locator("#table thead th").all_inner_texts()
    at = {name: headers.index(name) for name in ("model", "candidate", "saving_usd")}
    shown = {}
    for row in page.locator("#table tbody tr").all():
        cells = row.locator("td")
        group = (cells.nth(0).inner_text(), cells.nth(at["model"]).inner_text())
        assert group not in shown  # never a repeated row
        saving = dec(cells.nth(at["saving_usd"]).get_attribute("data-exact"))
        shown[group] = (cells.nth(at["candidate"]).inner_text(), saving)
        alternatives = row.locator("td.candidates > div").count()
        assert alternatives == max(others[group], 0)
    assert shown == best
    with page.expect_download() as download:
        page.click("#csv")
    csv = Path(download.value.path()).read_text().splitlines()
    assert csv[0].startswith("feature,provider,model,") and len(csv) - 1 == len(rows)
    page.screenshot(path=str(shots / "insights.png"), full_page=True)


def dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def quota_rows(env: ApiEnv, token: str) -> list[dict[str, Any]]:
    body = env.call("GET", "/quotas", token).json()
    return [
        dict(zip(body["decisions"]["columns"], r, strict=True)) for r in body["decisions"]["rows"]
    ]


def test_quotas_show_blocked_keys_to_their_team(env: ApiEnv, page: Page, shots: Path) -> None:
    # Every data route the pages call needs a token (the pages themselves only render shells).
    for path in ("/quotas", "/session", "/freshness", "/budgets/alpha-month/burndown"):
        assert env.call("GET", path).status_code == 401, path
    deadline = time.monotonic() + 90
    while not any(not r["allowed"] for r in quota_rows(env, env.tokens["viewer-all"])):
        assert time.monotonic() < deadline, "the worker wrote no blocked quota decision"
        time.sleep(1)
    blocked = next(r for r in quota_rows(env, env.tokens["viewer-all"]) if not r["allowed"])
    log_in(page, env.worker.url, env.tokens["viewer-all"], "/budgets")
    row = page.locator("#quotas tbody tr", has_text=blocked["key"]).filter(
        has_text=blocked["quota"]
    )
    row.locator("td.blocked").wait_for()
    used = row.locator("[data-exact]").first.get_attribute("data-exact")
    fresh = {(r["quota"], r["key"]): r for r in quota_rows(env, env.tokens["viewer-all"])}
    assert Decimal(used or "nan") == Decimal(fresh[(blocked["quota"], blocked["key"])]["used"])
    assert page.locator("#quotas tbody tr", has_text="beta-users").count() > 0
    page.locator("#quotas").screenshot(path=str(shots / "quotas.png"))
    page.context.clear_cookies()
    log_in(page, env.worker.url, env.tokens["viewer-alpha"], "/budgets")
    page.locator("#quotas tbody td.blocked").first.wait_for()
    assert "beta" not in page.locator("#quotas").inner_text()
    assert {r["quota"] for r in quota_rows(env, env.tokens["viewer-alpha"])} == {"alpha-users"}


def test_cookie_writes_need_the_csrf_header(env: ApiEnv) -> None:
    cookies = {"spendstream_session": env.tokens["operator-alpha"]}
    body = {"action": "unsilence", "budget": "alpha-month"}
    url = f"{env.base}/silences"
    refused = httpx.post(url, json=body, cookies=cookies)
    assert refused.status_code == 403 and "X-Spendstream-CSRF" in refused.json()["detail"]
    accepted = httpx.post(url, json=body, cookies=cookies, headers={"X-Spendstream-CSRF": "1"})
    assert accepted.status_code == 200, accepted.text
    assert httpx.get(f"{env.base}/session", cookies=cookies).json()["teams"] == ["alpha"]


def test_login_sends_the_browser_only_to_paths_on_this_site(env: ApiEnv, page: Page) -> None:
    hostile = ["/\t/evil.example", "/\n/evil.example", "//evil.example", "/\\evil.example"]
    hostile += ["https://evil.example", "javascript:alert(1)"]
    for target in hostile:  # the server refuses the page...
        answer = httpx.get(f"{env.worker.url}/login", params={"next": target})
        assert answer.status_code == 400, target
    page.goto(f"{env.worker.url}/login?next=%2Fbudgets")
    # ...and the page's script would not follow one either (browsers drop the tab: "//evil").
    resolved = page.evaluate("targets => targets.map(sameSitePath)", [*hostile, "/budgets?x=1"])
    assert resolved == ["/"] * len(hostile) + ["/budgets?x=1"]
    page.fill("#token", env.tokens["viewer-all"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{env.worker.url}/budgets")


def test_login_with_a_dot_segment_next_ends_on_the_dashboard(env: ApiEnv, page: Page) -> None:
    # "/.//host" and "/a/..//host" resolve to "//host": Chromium took the old script there.
    worst = ["/.//evil.example/steal", "/a/..//evil.example/steal", "/%2e%2e//evil.example"]
    for target in worst:
        assert httpx.get(f"{env.worker.url}/login", params={"next": target}).status_code == 400
    page.route(
        "**/*", lambda route: route.abort() if "evil" in route.request.url else route.continue_()
    )
    page.goto(f"{env.worker.url}/login?next=%2Fbudgets")
    assert page.evaluate("targets => targets.map(sameSitePath)", worst) == ["/"] * len(worst)
    # The script's own check, whatever the server let through: the address bar says the worst.
    page.evaluate(
        "next => history.replaceState(null, '', '/login?next=' + encodeURIComponent(next))",
        worst[0],
    )
    page.fill("#token", env.tokens["viewer-all"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{env.worker.url}/")
    page.locator("#who").wait_for()


def test_pages_fit_a_phone(env: ApiEnv, browser: Browser, shots: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    context.set_default_timeout(90_000)
    page = context.new_page()
    try:
        log_in(page, env.worker.url, env.tokens["viewer-all"])
        for path in ("/", "/explore", "/budgets", "/alerts", "/insights"):
            page.goto(f"{env.worker.url}{path}")
            page.locator("main table td").first.wait_for()
            # Only the tables' own scroll boxes may be wider than the screen.
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{path} is {width}px wide on a 390px phone"
        page.goto(f"{env.worker.url}/")
        page.locator("#spend-month[data-exact]").wait_for()
        page.screenshot(path=str(shots / "overview-phone.png"), full_page=True)
    finally:
        context.close()
