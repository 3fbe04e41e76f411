"""Recommendations, the what-if and the overview against a real worker: the API's permissions and
team scoping, decisions through the page, the overview's chart and top recommendations, and the
one money rule in the browser. Screenshots go to the pytest tmp dir, or to SPENDSTREAM_SHOTS
(``SPENDSTREAM_SHOTS=docs/img`` refreshes the documentation's images)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from spendstream.events import UsageEvent
from spendstream.money import format_usd
from tests.support.api_env import ApiEnv, start_env
from tests.support.browser import log_in

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.support.browser_fixtures"]  # browser, page, shots
# A budget whose daily pace is near alpha's daily spend (the chart draws it); the env's two
# 1000 USD budgets are far above every bar (named under the chart instead).
SMALL_BUDGET = """
[[budgets]]
name = "alpha-small"
scope = { team = "alpha" }
limit = "5"
thresholds = [100]
forecast = false
"""


def planted(team: str, feature: str, model: str, count: int) -> list[UsageEvent]:
    """``count`` short calls over the last two days, a tenth cut at max_tokens."""
    now = datetime.now(UTC) - timedelta(minutes=5)
    return [
        UsageEvent(
            event_id=f"{team}-{feature}-{i}",
            event_time=now - timedelta(minutes=17 * i),
            provider="openai",
            model=model,
            input_tokens=400 + i % 300,
            output_tokens=60 + i % 90,
            finish_reason="length" if i % 10 == 0 else "stop",
            tags={"team": team, "app": f"{team}-app", "feature": feature},
        )
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, migrated_template: Path) -> Iterator[ApiEnv]:
    for env in start_env(tmp_path_factory.mktemp("advice"), migrated_template, SMALL_BUDGET):
        env.publish(
            planted("alpha", "classify", "gpt-4o", 160)
            + planted("alpha", "answer", "gpt-4.1", 80)
            + planted("beta", "summarise", "gpt-4o", 120)
        )
        env.worker.wait_for_ledger_count(env.published)
        yield env


def recs(env: ApiEnv, token: str, **params: Any) -> list[dict[str, Any]]:
    answer = env.call("GET", "/recommendations", env.tokens[token], params=params)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["recommendations"])


def ledger_sum(env: ApiEnv, where: str) -> Decimal:
    sql = f"SELECT toString(sum(cost_total)) FROM ledger FINAL WHERE {where}"
    return Decimal(env.worker.api().post("/sql", {"query": sql})["rows"][0][0])


def test_api_scopes_teams_and_audits_decisions(env: ApiEnv) -> None:
    everyone = recs(env, "viewer-all")
    alpha = recs(env, "viewer-alpha")
    assert {r["scope"].get("team") for r in alpha} == {"alpha"}
    assert {"alpha", "beta"} <= {r["scope"].get("team") for r in everyone}
    monthly = [Decimal(r["monthly_usd"]) for r in everyone]
    assert monthly == sorted(monthly, reverse=True) and monthly[0] > 0
    beta = next(r for r in everyone if r["scope"].get("team") == "beta")
    body = {"state": "dismissed", "reason": "not now"}
    path = f"/recommendations/{beta['rec_id']}"
    assert env.call("POST", path, env.tokens["viewer-all"], json=body).status_code == 403
    assert env.call("POST", path, env.tokens["operator-alpha"], json=body).status_code == 404
    assert env.call("POST", path, None, json=body).status_code == 401
    done = env.call("POST", path, env.tokens["admin"], json=body)
    assert done.status_code == 200, done.text
    assert done.json()["decided_by"] == "local-admin"
    assert beta["rec_id"] not in {r["rec_id"] for r in recs(env, "viewer-all")}
    again = recs(env, "viewer-all", include_dismissed="true")
    assert next(r for r in again if r["rec_id"] == beta["rec_id"])["state"] == "dismissed"
    log = env.call("GET", "/recommendations/log", env.tokens["admin"]).json()
    assert [row[log["columns"].index("reason")] for row in log["rows"]] == ["not now"]
    assert env.call("GET", "/recommendations/log", env.tokens["operator-alpha"]).status_code == 403
    reopened = env.call("POST", path, env.tokens["admin"], json={"state": "open"})
    assert reopened.status_code == 200


def test_whatif_api_keeps_to_the_callers_teams(env: ApiEnv) -> None:
    since = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    body = {
        "since": since,
        "until": datetime.now(UTC).isoformat(),
        "changes": [{"action": "drop", "scope": {"feature": "classify"}}],
    }
    answer = env.call("POST", "/whatif", env.tokens["viewer-alpha"], json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert [row[0] for row in result["by_scope"]["rows"]] == ["alpha"]
    alpha = ledger_sum(
        env, f"team = 'alpha' AND event_time >= parseDateTime64BestEffort('{since}')"
    )
    classify = ledger_sum(
        env,
        f"team = 'alpha' AND feature = 'classify' "
        f"AND event_time >= parseDateTime64BestEffort('{since}')",
    )
    assert Decimal(result["before_usd"]) == alpha
    assert Decimal(result["after_usd"]) == alpha - classify
    bad = env.call("POST", "/whatif", env.tokens["viewer-alpha"], json={**body, "changes": []})
    assert bad.status_code == 400
    assert env.call("POST", "/whatif", None, json=body).status_code == 401


def test_recommendations_page_ranks_decides_and_simulates(
    env: ApiEnv, page: Page, shots: Path
) -> None:
    expected = recs(env, "admin")
    log_in(page, env.worker.url, env.tokens["admin"], "/recommendations")
    rows = page.locator("#recs table.recs tbody tr")
    rows.first.locator("[data-exact]").first.wait_for()
    assert rows.count() == len(expected)
    first = rows.first.locator("td").first
    assert Decimal(first.get_attribute("data-exact") or "nan") == Decimal(
        expected[0]["monthly_usd"]
    )
    assert first.inner_text().startswith(format_usd(Decimal(expected[0]["monthly_usd"])))
    assert expected[0]["action"] in rows.first.inner_text()
    link = rows.first.locator("a", has_text="Explore").get_attribute("href") or ""
    assert link.split("&since=")[0] == expected[0]["explore"].split("&since=")[0]
    page.screenshot(path=str(shots / "dashboard-recommendations.png"), full_page=True)
    # accept the top one through the page: the state and the author show, and the API agrees
    rows.first.locator("input.reason").fill("trying the smaller model")
    rows.first.locator("button[data-state=accepted]").click()
    page.locator("#recs .state-accepted").first.wait_for()
    accepted = next(r for r in recs(env, "admin") if r["rec_id"] == expected[0]["rec_id"])
    assert (accepted["state"], accepted["decided_by"]) == ("accepted", "local-admin")
    assert accepted["realised"] is not None

    page.select_option("#wi-action", "model")
    page.fill("#wi-scope", "feature=classify, model=gpt-4o")
    page.fill("#wi-value", "gpt-4o-mini")
    page.click("#wi-add")
    page.select_option("#wi-action", "price")
    page.fill("#wi-scope", "team=beta")
    page.fill("#wi-value", "-10")
    page.click("#wi-add")
    assert page.locator("#wi-changes li").count() == 2
    page.fill("#wi-since", "3d")
    page.click("#whatif-form button[type=submit]")
    page.locator("#wi-by-scope tbody td").first.wait_for()
    before = Decimal(page.locator("#wi-before").get_attribute("data-exact") or "nan")
    after = Decimal(page.locator("#wi-after").get_attribute("data-exact") or "nan")
    assert after < before
    assert before == ledger_sum(env, "event_time >= now() - INTERVAL 3 DAY")
    page.locator("#whatif").screenshot(path=str(shots / "dashboard-whatif.png"))
    env.call(
        "POST",
        f"/recommendations/{expected[0]['rec_id']}",
        env.tokens["admin"],
        json={"state": "open", "reason": "test done"},
    )


def test_overview_chart_top_recommendations_and_the_explain_slot(
    env: ApiEnv, page: Page, shots: Path
) -> None:
    log_in(page, env.worker.url, env.tokens["viewer-all"])
    page.locator("#trend-chart svg rect").first.wait_for()
    assert sorted(page.locator("#trend-legend > span").all_inner_texts()) == ["alpha", "beta"]
    now = datetime.now(UTC)
    days = ((now.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)).day
    lines = page.locator("#trend-chart svg line.budget-line")
    assert lines.count() == 1  # alpha-small, 5 USD a month: its pace per day
    small = format_usd((Decimal(5) / days).quantize(Decimal("1e-12"), "ROUND_DOWN"))
    assert f"alpha-small pace {small}" in (page.locator("#trend-chart svg").text_content() or "")
    note = page.locator("#trend-note").inner_text()
    big = format_usd((Decimal(1000) / days).quantize(Decimal("1e-12"), "ROUND_DOWN"))
    assert f"Off the scale: alpha-month pace, beta-month pace {big} per day" in note
    top = page.locator("#top-recs li")
    top.first.locator("[data-exact]").wait_for()
    expected = [r for r in recs(env, "viewer-all") if r["state"] == "open"][:3]
    assert top.count() == 3
    for item, rec in zip(top.all(), expected, strict=True):
        assert Decimal(item.locator("[data-exact]").get_attribute("data-exact") or "") == Decimal(
            rec["monthly_usd"]
        )
    # The What changed panel (Explain) draws its sentence into the Overview's slot.
    page.locator("#what-changed .sentence").wait_for()
    page.select_option("#trend-granularity", "hour")
    page.fill("#trend-by", "feature")
    page.click("#trend-form button[type=submit]")
    page.locator("#trend-title", has_text="Spend per hour by feature").wait_for()
    page.locator("#trend-legend", has_text="classify").wait_for()
    page.select_option("#trend-granularity", "day")
    page.fill("#trend-by", "team")
    page.click("#trend-form button[type=submit]")
    page.locator("#trend-title", has_text="Spend per day by team").wait_for()
    page.locator("#budgets tbody tr").nth(1).wait_for()
    page.screenshot(path=str(shots / "dashboard-overview.png"), full_page=True)


def test_the_page_and_python_share_one_money_rule(env: ApiEnv, page: Page) -> None:
    log_in(page, env.worker.url, env.tokens["viewer-all"])
    values = [
        "0",
        "1",
        "1.005",
        "0.999949",
        "0.99996",
        "60.98",
        "6",
        "1234567.891",
        "0.4567",
        "0.45675",
        "0.0042",
        "0.00123456",
        "-0.5",
        "-12.345",
        "0.000000001234",
    ]
    shown = page.evaluate("values => values.map((v) => SS.usd(v))", values)
    assert shown == [format_usd(Decimal(v)) for v in values]
    assert format_usd(Decimal("60.98")) == "$60.98" and format_usd(Decimal(6)) == "$6.00"
    assert format_usd(Decimal("0.0042")) == "$0.004200"


def stacked_chart(values: str, then: str) -> str:
    """A page function: the Overview's chart (``SS.stacked``) of two bars of 100 units in an
    800 px box, with budget lines ``b0 pace``, ``b1 pace``, ... at ``values`` (a JS array of
    BigInts), then ``then`` (JS that reads ``box`` and returns)."""
    return f"""() => {{
          const box = document.createElement("div");
          box.style.width = "800px";
          document.body.append(box);
          const lines = {values}.map((v, i) => ({{ label: `b${{i}} pace`, value: v }}));
          SS.stacked(box, ["2026-01-01", "2026-01-02"], ["a"], () => 100n, lines);
          {then}
        }}"""


def test_budget_lines_close_together_keep_their_labels_apart(env: ApiEnv, page: Page) -> None:
    log_in(page, env.worker.url, env.tokens["viewer-all"])
    tops = page.evaluate(
        stacked_chart(
            "[50n, 51n, 52n, 10n]",
            """return [...box.querySelectorAll("text.budget-label")].map(
            (t) => [t.getBoundingClientRect().top, t.getBoundingClientRect().height]);""",
        )
    )
    assert len(tops) == 4
    ordered = sorted(top for top, _height in tops)
    gaps = [b - a for a, b in pairwise(ordered)]
    tallest = max(height for _top, height in tops)
    # a visible gap between labels (they touched once, and their white halos overlapped)
    assert min(gaps) >= tallest + 2, tops


def test_budget_line_labels_sit_above_their_lines_clear_of_the_y_axis(
    env: ApiEnv, page: Page
) -> None:
    """A pace at the top of the scale and three near $0 (the Overview's budget pace chart):
    each label above its own line, inside the chart, and none on a row of the y axis's
    figures within 24 px of them (the top label once read as one with the axis's top figure,
    and labels pushed below their lines sat on the $0 row)."""
    log_in(page, env.worker.url, env.tokens["viewer-all"])
    found = page.evaluate(
        stacked_chart(
            "[100n, 6n, 5n, 4n]",
            """const rect = (node) => {
            const r = node.getBoundingClientRect();
            return { left: r.left, right: r.right, top: r.top, bottom: r.bottom };
          };
          const plotLeft = Number(box.querySelector("line").getAttribute("x1"));
          const axis = [...box.querySelectorAll("text")].filter(
            (t) => Number(t.getAttribute("x")) < plotLeft).map(rect);
          const lineY = Object.fromEntries([...box.querySelectorAll("line.budget-line")].map(
            (l) => [l.textContent.split(" pace")[0], l.getBoundingClientRect().top]));
          const labels = [...box.querySelectorAll("text.budget-label")].map(
            (t) => ({ name: t.textContent.split(" pace")[0], ...rect(t) }));
          return { axis, lineY, labels, chart: rect(box.querySelector("svg")) };""",
        )
    )
    axis, labels, chart = found["axis"], found["labels"], found["chart"]
    assert len(axis) == 3 and len(labels) == 4, found
    for label in labels:
        assert label["bottom"] <= found["lineY"][label["name"]] + 1, label  # above its line
        assert chart["top"] <= label["top"] and label["bottom"] <= chart["bottom"], label
        for figure in axis:
            same_row = label["top"] < figure["bottom"] and figure["top"] < label["bottom"]
            assert not same_row or label["left"] - figure["right"] >= 24, (label, figure)


def test_insights_rightsize_is_one_row_per_feature_and_model(
    env: ApiEnv, page: Page, shots: Path
) -> None:
    log_in(page, env.worker.url, env.tokens["viewer-all"], "/insights?insight=rightsize&since=3d")
    page.locator("#table td.saving").first.wait_for()
    headers = page.locator("#table thead th").all_inner_texts()
    assert headers[-2:] == ["alternatives", "flag"] and "p50_input_tokens" not in headers
    groups = [
        (row.locator("td").nth(0).inner_text(), row.locator("td").nth(2).inner_text())
        for row in page.locator("#table tbody tr").all()
    ]
    assert len(groups) == len(set(groups)) and ("classify", "gpt-4o") in groups
    # the table fits the page: no column cut off at the right edge
    assert page.evaluate("document.querySelector('#table').scrollWidth") <= page.evaluate(
        "document.querySelector('#table').clientWidth"
    )
    page.screenshot(path=str(shots / "dashboard-insights.png"), full_page=True)


def test_api_refuses_another_teams_scope_and_bad_times(env: ApiEnv) -> None:
    refused = env.call(
        "GET", "/recommendations", env.tokens["viewer-alpha"], params={"scope": "team=beta"}
    )
    assert refused.status_code == 403 and "may not read team 'beta'" in refused.text
    body = {
        "since": "0001-01-01T00:00:00",
        "until": "0001-01-02T00:00:00",
        "changes": [{"action": "drop"}],
    }
    assert env.call("POST", "/whatif", env.tokens["viewer-alpha"], json=body).status_code == 400
    naive = {**body, "since": "2026-12-01T00:00:00", "until": "2026-12-02T00:00:00+00:00"}
    assert env.call("POST", "/whatif", env.tokens["viewer-alpha"], json=naive).status_code == 200
    old = env.call(
        "GET", "/recommendations/log", env.tokens["admin"], params={"since": "0035-01-01"}
    )
    assert old.status_code == 400 and "between 1970 and 2200" in old.text
