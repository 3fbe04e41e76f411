"""The Runs and Customers pages against a real worker: the figures shown are the API's (to the
last digit, via ``data-exact``), a clicked run opens its waterfall, margin marks the customers
served at a loss, a team-scoped token sees its team only, and names from events stay inert.
Screenshots go to the pytest tmp dir, or to SPENDSTREAM_SHOTS (``SPENDSTREAM_SHOTS=docs/img``
refreshes the documentation's images)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page

from spendstream.events import UsageEvent
from spendstream.money import format_usd
from tests.support.agent_data import agent_runs
from tests.support.api_env import ApiEnv, start_env
from tests.support.browser import log_in

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.support.browser_fixtures"]  # browser, page, shots
HOSTILE = '<img src=x onerror="alert(1)">'  # a customer name from an event: shown as text


def planted() -> list[UsageEvent]:
    """36 runs of three agents (team ``agents``) for four customers, one of them named
    HOSTILE, over the last five days; and one run of team alpha's ``helper`` agent."""
    start = datetime.now(UTC) - timedelta(days=5)
    runs = [
        e.model_copy(update={"customer": HOSTILE}) if e.customer == "umbrella" else e
        for e in agent_runs(36, seed=7, start=start)
    ]
    helper = [
        UsageEvent(
            event_id=f"alpha-run-{step}",
            event_time=start + timedelta(days=1, seconds=step),
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=900,
            output_tokens=120,
            run_id="alpha-run",
            agent="helper",
            customer="acme",
            step=step,
            tags={"team": "alpha", "feature": "chat"},
        )
        for step in (1, 2, 3)
    ]
    return runs + helper


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, migrated_template: Path) -> Iterator[ApiEnv]:
    for env in start_env(tmp_path_factory.mktemp("agents"), migrated_template):
        env.publish(planted())
        env.worker.wait_for_ledger_count(env.published)
        today = datetime.now(UTC).date()
        revenue = [
            {
                "customer": customer,
                "period_start": str(today - timedelta(days=20)),
                "period_end": str(today + timedelta(days=1)),
                "amount": amount,
            }
            for customer, amount in (("acme", "500"), ("globex", "0.01"), ("initech", "250"))
        ]
        # Through the real server's request guard: JSON rows, and CSV (its one non-JSON body).
        stored = env.call("POST", "/revenue", env.tokens["admin"], json=revenue[1:])
        assert stored.status_code == 200, stored.text
        acme = ",".join(str(value) for value in revenue[0].values())
        csv_body = f"customer,period_start,period_end,amount\n{acme}\n"
        headers = {"Content-Type": "text/csv"}
        stored = env.call(
            "POST", "/revenue", env.tokens["admin"], content=csv_body, headers=headers
        )
        assert stored.status_code == 200 and stored.json() == {"stored": 1}, stored.text
        refused = env.call("POST", "/spend", env.tokens["admin"], content=csv_body, headers=headers)
        assert refused.status_code == 415  # text/csv nowhere else
        yield env


def records(env: ApiEnv, token: str, path: str, **params: Any) -> list[dict[str, Any]]:
    answer = env.call("GET", path, env.tokens[token], params=params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return [dict(zip(body["columns"], row, strict=True)) for row in body["rows"]]


def exact(cell: Locator) -> Decimal:
    """The exact figure behind a money cell (SS.money writes it to ``data-exact``)."""
    return Decimal(cell.get_attribute("data-exact") or "nan")


def test_runs_page_shows_the_apis_figures_and_a_runs_waterfall(
    env: ApiEnv, page: Page, shots: Path
) -> None:
    agents = records(env, "admin", "/runs", since="7d")
    top = records(env, "admin", "/runs/top", since="7d", limit=20)
    assert {a["agent"] for a in agents} == {"triage", "research", "coder", "helper"}
    log_in(page, env.worker.url, env.tokens["admin"], "/runs")
    rows = page.locator("#agents tbody tr")
    rows.first.locator("[data-exact]").first.wait_for()
    assert rows.count() == len(agents)
    for row, agent in zip(rows.all(), agents, strict=True):
        cells = row.locator("td")
        assert cells.nth(0).inner_text() == agent["agent"]
        assert [exact(cells.nth(i)) for i in (2, 3, 4, 5)] == [
            Decimal(agent[k]) for k in ("cost_p50", "cost_p95", "cost_max", "cost")
        ]
    answer = page.locator("#runs-answer").inner_text()
    first = agents[0]
    assert f"agent {first['agent']}: p95 {format_usd(Decimal(first['cost_p95']))} per run" in answer
    assert f"over 7 days ({first['runs']} runs" in answer
    costliest = page.locator("#runs-answer strong.costliest")
    assert Decimal(costliest.get_attribute("data-exact") or "nan") == Decimal(top[0]["cost"])
    assert f"(run {top[0]['run_id']}, agent {top[0]['agent']}" in answer
    runs = page.locator("#top-runs tbody tr")
    assert runs.count() == len(top)
    assert [r.locator("button.run-link").inner_text() for r in runs.all()] == [
        r["run_id"] for r in top
    ]
    assert exact(runs.first.locator("td").nth(6)) == Decimal(top[0]["cost"])
    sessions = records(env, "admin", "/sessions", since="7d", limit=20)
    assert page.locator("#sessions tbody tr").count() == len(sessions)

    steps = records(env, "admin", f"/runs/{top[0]['run_id']}")
    runs.first.locator("button.run-link").click()
    page.locator("#waterfall svg rect.step-bar").first.wait_for()
    assert page.locator("#waterfall svg rect.step-bar").count() == len(steps)
    total = Decimal(page.locator("#run-summary .run-total").get_attribute("data-exact") or "nan")
    assert total == sum(Decimal(s["cost"]) for s in steps) == Decimal(top[0]["cost"])
    labels = page.locator("#waterfall svg text.step-label").all_text_contents()
    assert labels == [f"{s['step']}. {s['kind']} {s['name']}" for s in steps]
    assert page.locator("#steps tbody tr").count() == len(steps)
    page.screenshot(path=str(shots / "dashboard-runs.png"), full_page=True)


def test_customers_page_shows_cost_trend_and_the_customers_served_at_a_loss(
    env: ApiEnv, page: Page, shots: Path
) -> None:
    customers = records(env, "admin", "/customers", since="30d")
    margin = env.call("GET", "/customers/margin", env.tokens["admin"], params={"since": "30d"})
    losses = [m["customer"] for m in margin.json()["at_loss"]]
    assert losses == ["globex"]
    log_in(page, env.worker.url, env.tokens["admin"], "/customers")
    rows = page.locator("#customers tbody tr")
    rows.first.locator("[data-exact]").first.wait_for()
    shown = {
        row.locator("td").nth(0).inner_text(): exact(row.locator("td").nth(2)) for row in rows.all()
    }
    expected = {c["customer"] or "(none)": Decimal(c["cost"]) for c in customers}
    assert shown == expected and HOSTILE in shown  # the hostile name is text, not markup
    assert page.locator("#customers img").count() == 0
    page.locator("#trend-chart svg rect").first.wait_for()
    assert HOSTILE in page.locator("#trend-legend").inner_text()
    margins = page.locator("#margins tbody tr")
    assert margins.count() == len(margin.json()["margins"])
    at_loss = page.locator("#margins tbody tr.at-loss")
    assert [r.locator("td").first.inner_text() for r in at_loss.all()] == losses
    globex = next(m for m in margin.json()["margins"] if m["customer"] == "globex")
    assert exact(at_loss.first.locator("td").nth(4)) == Decimal(globex["margin"]) < 0
    said = page.locator("#customers-answer").inner_text()
    assert "1 customer period served at a loss: globex" in said
    page.screenshot(path=str(shots / "dashboard-customers.png"), full_page=True)


def test_a_team_scoped_token_sees_its_team_only(env: ApiEnv, page: Page) -> None:
    log_in(page, env.worker.url, env.tokens["viewer-alpha"], "/runs")
    page.locator("#agents tbody tr td").first.wait_for()
    assert page.locator("#agents tbody tr td:first-child").all_inner_texts() == ["helper"]
    assert page.locator("#top-runs button.run-link").all_inner_texts() == ["alpha-run"]
    page.goto(f"{env.worker.url}/customers")
    page.locator("#customers tbody tr [data-exact]").first.wait_for()
    alpha = records(env, "viewer-alpha", "/customers", since="30d")
    assert sorted(page.locator("#customers tbody tr td:first-child").all_inner_texts()) == sorted(
        c["customer"] or "(none)" for c in alpha
    )
    assert "needs a token of every team" in page.locator("#margin-note").inner_text()
    assert page.locator("#margins table").count() == 0
