"""Stage 8, dashboard: time to data of each dashboard page over a generated ledger
(``bench.reports.generate``, 10 M rows by default), and each page's weight.

The app is the one the worker serves (API + dashboard pages), in this process with uvicorn.
A page's time to data is the wall time of the API requests its script sends, sent at once
as the browser does (``Promise.all``), from the first request to the last answer. Page weight:
the bytes of the page's HTML, stylesheet and scripts (uncompressed, as served), and apart from
it the JSON its requests return.

    python -m bench.dashboard --rows 10000000 --runs 20
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx

from bench.api import ledger_with_tokens
from bench.common import percentile
from bench.reports import SPAN_DAYS
from spendstream.alerts.config import Alerting, AlertsConfig, BudgetConfig
from spendstream.api import ApiDeps, create_api
from spendstream.api.readers import limits
from spendstream.api.server import ApiServer
from spendstream.auth.authenticator import TokenAuthenticator
from spendstream.config import ApiSettings
from spendstream.dashboard.http import dashboard_api_router
from spendstream.dashboard.pages import dashboard_router
from spendstream.embedded import free_port
from spendstream.pricing import default_pricer
from spendstream.sinks.client import connect
from spendstream.sinks.pool import PooledReader

BUDGETS = Alerting(
    budgets=(
        BudgetConfig(name="all-month", limit=Decimal(500_000)),
        BudgetConfig(name="search-month", scope={"team": "search"}, limit=Decimal(100_000)),
        BudgetConfig(
            name="search-day", scope={"team": "search"}, period="day", limit=Decimal(5000)
        ),
    ),
    alerts=AlertsConfig(),
    source="bench",
)
ASSETS = ("/static/style.css", "/static/common.js")


def page_requests(now: datetime) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Each page's API requests, as its script sends them on load."""
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0).isoformat()
    day = now.replace(hour=0, minute=0, second=0, microsecond=0).isoformat()
    spend = "/api/v1/spend"
    return {
        "overview": [
            (spend, {"by": ["team", "app", "model"], "since": month, "limit": 10000}),
            (spend, {"by": "team", "since": day, "limit": 10000}),
            ("/api/v1/budgets/status", {}),
            ("/api/v1/freshness", {}),
            ("/api/v1/session", {}),
        ],
        "explore (team by hour, 24 h)": [
            (spend, {"by": "team", "granularity": "hour", "since": "24h", "limit": 10000}),
            ("/api/v1/session", {}),
        ],
        "explore (model by day, 30 d)": [
            (spend, {"by": "model", "granularity": "day", "since": "30d", "limit": 10000}),
            ("/api/v1/session", {}),
        ],
        "explore (app by minute, 24 h, team filter)": [
            (
                spend,
                {
                    "by": "app",
                    "granularity": "minute",
                    "since": "24h",
                    "limit": 10000,
                    "filter": "team=search",
                },
            ),
            ("/api/v1/session", {}),
        ],
        "budgets": [
            ("/api/v1/budgets/status", {}),
            ("/api/v1/budgets", {}),
            ("/api/v1/session", {}),
            *((f"/api/v1/budgets/{b.name}/burndown", {}) for b in BUDGETS.budgets),
        ],
        "alerts": [
            ("/api/v1/alerts", {"since": "7d"}),
            ("/api/v1/budgets", {}),
            ("/api/v1/session", {}),
        ],
        "prices": [
            ("/api/v1/prices", {}),
            ("/api/v1/prices/overrides", {}),
            ("/api/v1/session", {}),
        ],
    }


def time_to_data(
    http: httpx.Client,
    pool: ThreadPoolExecutor,
    base: str,
    token: str,
    requests: list[tuple[str, dict[str, Any]]],
) -> tuple[float, int]:
    """Milliseconds until every request answered, and the JSON bytes received."""
    headers = {"Authorization": f"Bearer {token}"}

    def one(item: tuple[str, dict[str, Any]]) -> int:
        response = http.get(base + item[0], params=item[1], headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{item[0]}: HTTP {response.status_code} {response.text[:200]}")
        return len(response.content)

    started = time.perf_counter()
    sizes = list(pool.map(one, requests))
    return (time.perf_counter() - started) * 1000, sum(sizes)


def page_weight(http: httpx.Client, base: str, token: str, page: str) -> int:
    script = {"overview": "/", "budgets": "/budgets", "alerts": "/alerts", "prices": "/prices"}
    path = script.get(page, "/explore")
    html = http.get(base + path, cookies={"spendstream_session": token})
    name = path.strip("/") or "overview"
    return len(html.content) + sum(
        len(http.get(base + asset).content) for asset in (*ASSETS, f"/static/{name}.js")
    )


def run_dashboard(dsn: str, rows: int, runs: int, span_days: int = SPAN_DAYS) -> dict[str, Any]:
    database, now, generated, store, admin, scoped = ledger_with_tokens(
        dsn, rows, "dashboard", span_days
    )
    settings = ApiSettings()
    factory = lambda: connect(dsn, database, settings=limits(settings))  # noqa: E731
    deps = ApiDeps(
        settings,
        PooledReader(factory),
        store,
        TokenAuthenticator(store),
        BUDGETS,
        default_pricer(),
        routers=(dashboard_api_router(PooledReader(factory, size=2), BUDGETS.budgets),),
        pages=(dashboard_router(),),
    )
    server = ApiServer(create_api(deps), "127.0.0.1", free_port()).start()
    out: dict[str, Any] = {**generated, "runs": runs}
    try:
        with httpx.Client(timeout=120) as http, ThreadPoolExecutor(8) as pool:
            for page, requests in page_requests(now).items():
                for who, token in (("admin", admin), ("team viewer", scoped)):
                    if who == "team viewer" and page != "overview":
                        continue
                    label = page if who == "admin" else f"{page}, team-scoped token"
                    times, size = [], 0
                    try:
                        time_to_data(http, pool, server.url, token, requests)  # warm-up
                        for _ in range(runs):
                            ms, size = time_to_data(http, pool, server.url, token, requests)
                            times.append(ms)
                    except RuntimeError as exc:  # e.g. the API's max_execution_time
                        out[f"{label}.error"] = str(exc)[:300]
                        print(f"[bench] dashboard {label}: {exc}"[:300], flush=True)
                        continue
                    out[f"{label}.p50_ms"] = round(percentile(times, 0.5), 1)
                    out[f"{label}.p95_ms"] = round(percentile(times, 0.95), 1)
                    out[f"{label}.json_bytes"] = size
                    if who == "admin":
                        out[f"{label}.page_bytes"] = page_weight(http, server.url, admin, page)
                    print(f"[bench] dashboard {label}: p95 {out[f'{label}.p95_ms']} ms", flush=True)
    finally:
        server.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--dsn", default="")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="spendstream-bench-dash-") as scratch:
        dsn = args.dsn or f"chdb://{scratch}/chdb"
        print(json.dumps(run_dashboard(dsn, args.rows, args.runs), indent=2))


if __name__ == "__main__":
    main()
