"""``spendstream reconcile fetch/report/alert`` against local stand-ins of the OpenAI and
Anthropic admin APIs (pages, a 429 with retry-after, a 503), the real chDB ledger and the Slack
stand-in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from typer.testing import CliRunner

from spendstream.cli.reconcile import reconcile_app
from spendstream.config import ProviderAccountSettings, ReconcileAlertSettings
from spendstream.reconcile.alerting import exceeds
from spendstream.reconcile.fetch import AdminClient, FetchError
from spendstream.reconcile.providers import parse_pages
from spendstream.reconcile.store import InvoiceStore
from tests.support.admin_api import AdminApi
from tests.support.ledger_data import fill_ledger
from tests.support.reconcile_data import (
    DAYS,
    START,
    saved_reports,
    true_traffic,
    what_we_logged,
)
from tests.support.slack_server import SlackServer

pytestmark = pytest.mark.integration

OPENAI_KEY = "sk-admin-openai-SECRET-0001"
ANTHROPIC_KEY = "sk-ant-admin-SECRET-0002"
SINCE, UNTIL = START.date().isoformat(), (START.date() + timedelta(days=DAYS)).isoformat()
EMPTY_PAGE = {"object": "page", "data": [], "has_more": False, "next_page": None}


@pytest.fixture
def apis() -> Iterator[dict[str, AdminApi]]:
    saved = saved_reports(true_traffic())
    openai = AdminApi(
        {
            "/v1/organization/costs": saved["openai-costs"],
            "/v1/organization/usage/completions": saved["openai-usage"],
            "/v1/organization/usage/embeddings": [EMPTY_PAGE],
        }
    ).start()
    anthropic = AdminApi(
        {
            "/v1/organizations/cost_report": saved["anthropic-cost"],
            "/v1/organizations/usage_report/messages": saved["anthropic-usage"],
        }
    ).start()
    yield {"openai": openai, "anthropic": anthropic, "saved": saved}  # type: ignore[dict-item]
    openai.stop()
    anthropic.stop()


def config(tmp_path: Path, chdb_path: Path, apis: dict[str, Any], slack: SlackServer) -> Path:
    path = tmp_path / "spendstream.toml"
    path.write_text(
        f"""
[clickhouse]
dsn = "chdb://{chdb_path}"
[log]
level = "info"
[alerts]
slack_webhook_base = "{slack.base_url}"
group_wait = "1s"
[alerts.channels]
finops-slack = "slack://T000/B000/XXXXXXXX"
[reconcile.openai]
admin_key = "{OPENAI_KEY}"
base_url = "{apis["openai"].base_url}"
max_attempts = 4
[reconcile.openai.mapping]
proj_search = {{ team = "search" }}
proj_support = {{ team = "support" }}
[reconcile.anthropic]
admin_key = "{ANTHROPIC_KEY}"
base_url = "{apis["anthropic"].base_url}"
[reconcile.alerts]
enabled = true
percent = "50"
amount = "0.01"
channels = ["finops-slack"]
"""
    )
    return path


def run(*args: str) -> Any:
    result = CliRunner().invoke(reconcile_app, list(args))
    assert OPENAI_KEY not in result.output and ANTHROPIC_KEY not in result.output
    return result


def test_fetch_report_and_alert_end_to_end(
    ledger_client: Client,
    chdb_path: Path,
    tmp_path: Path,
    apis: dict[str, Any],
    slack: SlackServer,
    capfd: pytest.CaptureFixture[str],
) -> None:
    logged, _dropped = what_we_logged(true_traffic())
    fill_ledger(ledger_client, logged)
    path = config(tmp_path, chdb_path, apis, slack)
    for provider in ("openai", "anthropic"):
        result = run("fetch", "-p", provider, "--since", SINCE, "--until", UNTIL, "-c", str(path))
        assert result.exit_code == 0, result.output
        assert f"{DAYS} new day(s)" in result.output

    openai: AdminApi = apis["openai"]
    statuses = [status for p, status in openai.answers if p == "/v1/organization/costs"]
    assert statuses[:3] == [429, 200, 503] and statuses[3:] == [200] * (DAYS - 1)
    assert all(h.get("Authorization") == f"Bearer {OPENAI_KEY}" for _, _, h in openai.requests)
    costs = [q for p, q, _ in openai.requests if p == "/v1/organization/costs"]
    assert costs[0]["bucket_width"] == ["1d"] and costs[0]["group_by"] == [
        "line_item",
        "project_id",
        "api_key_id",
    ]
    usage = [q for p, q, _ in openai.requests if p == "/v1/organization/usage/completions"]
    assert usage[0]["group_by"] == ["model", "project_id", "api_key_id", "batch"]
    assert [q.get("page") for q in costs] == [None, None, ["page_1"], ["page_1"], ["page_2"]]
    anthropic: AdminApi = apis["anthropic"]
    assert all(h.get("x-api-key") == ANTHROPIC_KEY for _, _, h in anthropic.requests)
    assert anthropic.requests[0][1]["starting_at"] == [f"{SINCE}T00:00:00Z"]

    # Fetched lines are exactly the lines of the same pages imported from files.
    store = InvoiceStore(ledger_client)
    start, end = START.date(), START.date() + timedelta(days=DAYS)
    saved = apis["saved"]
    for provider, names in (
        ("openai", ("openai-costs", "openai-usage")),
        ("anthropic", ("anthropic-cost", "anthropic-usage")),
    ):
        pages = [("saved", page) for name in names for page in saved[name]]
        expected = parse_pages(provider, pages).lines
        assert store.lines(start, end, provider) == expected

    again = run("fetch", "-p", "openai", "--since", SINCE, "--until", UNTIL, "-c", str(path))
    assert again.exit_code == 0 and "0 new day(s), 0 replaced, 3 unchanged" in again.output

    report = run("report", "--since", SINCE, "--until", UNTIL, "-b", "model", "-f", "json",
                 "-c", str(path))  # fmt: skip
    assert report.exit_code == 0, report.output
    rows = [json.loads(line) for line in report.output.splitlines() if line.startswith("{")]
    total = rows[-1]
    assert total["provider"] == "TOTAL"
    parts = ("price_drift", "never_seen", "unpriced", "hidden", "unexplained")
    for row in rows:
        assert sum(Decimal(row[p]) for p in parts) == Decimal(row["difference_usd"])
    unpriced = next(r for r in rows if r["model"] == "gpt-9-preview")
    assert Decimal(unpriced["unpriced"]) == Decimal(unpriced["invoiced_usd"]) > 0
    daily = run("report", "--since", SINCE, "--until", UNTIL, "-b", "day", "-f", "json",
                "-c", str(path))  # fmt: skip
    days = [json.loads(line) for line in daily.output.splitlines() if line.startswith("{")]
    assert [d["day"] for d in days] == [
        (START.date() + timedelta(days=n)).isoformat() for n in range(DAYS)
    ] + ["TOTAL"]
    assert days[-1]["difference_usd"] == total["difference_usd"]
    table = run("report", "--since", SINCE, "--until", UNTIL, "-b", "project", "-f", "csv",
                "-c", str(path))  # fmt: skip
    assert "proj_search (team=search)" in table.output and "coverage_pct" in table.output

    # Alerts: every cell more than 50 % off, once, in one grouped Slack message.
    from spendstream.cli.reconcile import accounts_of
    from spendstream.config import load_settings
    from spendstream.pricing import default_pricer
    from spendstream.reconcile.variance import compute_variance
    from spendstream.sinks.access import ClientReader

    settings = load_settings(path)
    cells = compute_variance(
        ClientReader(ledger_client), store.lines(start, end), default_pricer(),
        accounts_of(settings), start, end,
    )  # fmt: skip
    rule = ReconcileAlertSettings(percent=Decimal(50), amount=Decimal("0.01"))
    expected_cells = [c for c in cells if exceeds(c.variance, rule)]
    assert {c.key[3] for c in expected_cells} == {"gpt-9-preview"}
    assert len(expected_cells) == DAYS * 2  # two mapped projects a day
    first = run("alert", "--since", SINCE, "--until", UNTIL, "--send", "-c", str(path))
    assert first.exit_code == 0, first.output
    assert f"{len(expected_cells)} reconciliation alert(s) created" in first.output
    assert len(slack.received) == 1
    text = json.dumps(slack.received[0])
    assert text.count("Reconciliation 2026-11-0") == len(expected_cells)
    assert "gpt-9-preview" in text and "we under-estimate" in text
    second = run("alert", "--since", SINCE, "--until", UNTIL, "--send", "-c", str(path))
    assert "0 reconciliation alert(s) created" in second.output
    assert len(slack.received) == 1
    captured = capfd.readouterr()
    assert OPENAI_KEY not in captured.out + captured.err
    assert ANTHROPIC_KEY not in captured.out + captured.err


def test_fetch_gives_up_after_max_attempts_and_never_shows_the_key() -> None:
    api = AdminApi({"/v1/organization/costs": [EMPTY_PAGE]}, retry_after="0").start()
    api.fail_page_one = False
    try:
        settings = ProviderAccountSettings(
            admin_key=OPENAI_KEY,  # type: ignore[arg-type]
            base_url=api.base_url,
            max_attempts=1,
        )
        with AdminClient("openai", settings, backoff_s=0.01) as client:
            endpoint = next(e for e in __import__("spendstream.reconcile.fetch").reconcile.fetch
                            .ENDPOINTS["openai"] if e.name == "costs")  # fmt: skip
            with pytest.raises(FetchError) as failure:
                list(client.pages(endpoint, START, START + timedelta(days=1)))
        assert "HTTP 429" in str(failure.value) and OPENAI_KEY not in str(failure.value)
        assert repr(settings).count(OPENAI_KEY) == 0
    finally:
        api.stop()
