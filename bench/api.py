"""Stage 7, api: the HTTP API over a generated ledger (``bench.reports.generate``, 10 M rows by
default) served by uvicorn in this process, exactly as the worker serves it.

- Authentication overhead: the same request through two apps over the same ClickHouse, one
  with the real token authenticator and one whose authenticator admits everyone; requests
  alternate between the two so both see the same machine load. Measured on a request without
  a query (``/api/v1/budgets``: the overhead at its most visible) and on the spend endpoint.
- Spend endpoint latency: p50/p95 of ``/api/v1/spend`` for several groupings over 30 days.
- The request guard's per-request head checks (framing, Host, security headers) alone; both
  apps above run behind the guard, so its cost is in neither ratio.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import httpx
from fastapi import Request

from bench.common import percentile
from bench.reports import SPAN_DAYS, generate
from spendstream.alerts.config import Alerting, AlertsConfig
from spendstream.api import ApiDeps, create_api
from spendstream.api.framing import framing_problem, host_problem, with_security_headers
from spendstream.api.readers import limits
from spendstream.api.server import ApiServer
from spendstream.auth.authenticator import TokenAuthenticator
from spendstream.auth.roles import Principal, Role
from spendstream.auth.tokens import TokenStore
from spendstream.config import ApiSettings
from spendstream.config.network import allowed_host_names
from spendstream.embedded import free_port
from spendstream.pricing import default_pricer
from spendstream.sinks.client import connect
from spendstream.sinks.pool import PooledReader
from spendstream.worker.schema import migrate

SPEND_QUERIES: dict[str, dict[str, Any]] = {
    "team": {"by": "team"},
    "team,model": {"by": ["team", "model"]},
    "user (top 50)": {"by": "user"},
    "app by day, one team": {"by": "app", "granularity": "day", "filter": "team=search"},
    "feature tag, team-scoped token": {"by": "feature"},
}


NO_BUDGETS = Alerting(budgets=(), alerts=AlertsConfig(), source="bench")


class AdmitEveryone(TokenAuthenticator):
    """The no-auth baseline: every request is the admin (no header read, no lookup)."""

    def authenticate(self, request: Request) -> Principal:
        return Principal("bench", Role.ADMIN)


def _timed(client: httpx.Client, url: str, token: str, params: Any) -> float:
    started = time.perf_counter()
    response = client.get(url, params=params, headers={"Authorization": f"Bearer {token}"})
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {response.status_code} {response.text[:200]}")
    return elapsed


def authenticate_us(authenticator: TokenAuthenticator, token: str) -> dict[str, float]:
    """The authenticator alone: microseconds per call on a cached token."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/spend",
        "headers": [(b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 1),
    }
    request = Request(scope)
    authenticator.authenticate(request)  # fills the cache
    calls = 20_000
    started = time.perf_counter()
    for _ in range(calls):
        authenticator.authenticate(request)
    return {"authenticate_us": round((time.perf_counter() - started) / calls * 1e6, 2)}


def request_checks_us() -> dict[str, float]:
    """The guard's head checks on a typical request: microseconds per request."""
    allowed = allowed_host_names([], "127.0.0.1")
    headers = {"host": "127.0.0.1:6066", "authorization": "Bearer x", "accept": "*/*"}
    answer = [(b"content-type", b"application/json"), (b"content-length", b"120")]
    calls = 20_000
    started = time.perf_counter()
    for _ in range(calls):
        framing_problem(headers)
        host_problem("/api/v1/spend", headers, allowed)
        with_security_headers(list(answer))
    return {"request_checks_us": round((time.perf_counter() - started) / calls * 1e6, 2)}


class BenchLedger(NamedTuple):
    """A generated ledger in its own database, with an admin and a team-search viewer token."""

    database: str
    end: datetime
    generated: dict[str, Any]
    store: TokenStore
    admin: str
    scoped: str


def ledger_with_tokens(dsn: str, rows: int, stage: str, span_days: int = SPAN_DAYS) -> BenchLedger:
    """``rows`` generated ledger rows (``bench.reports.generate``) over the ``span_days``
    ending now, and two tokens."""
    database = f"bench_{stage}_{int(time.time())}"
    client = connect(dsn, database)
    migrate(client)
    end = datetime.now(UTC).replace(microsecond=0)
    generated = generate(client, rows, end, span_days)
    print(f"[bench] {stage}: {rows} ledger rows in {generated['generate_s']} s", flush=True)
    store = TokenStore(connect(dsn, database))
    _, admin = store.create("bench-admin", Role.ADMIN)
    _, scoped = store.create("bench-search", Role.VIEWER, ["search"])
    return BenchLedger(database, end, generated, store, admin, scoped)


def run_api(dsn: str, rows: int, requests: int, span_days: int = SPAN_DAYS) -> dict[str, Any]:
    database, end, generated, store, admin, scoped = ledger_with_tokens(dsn, rows, "api", span_days)
    settings = ApiSettings()
    reader = PooledReader(lambda: connect(dsn, database, settings=limits(settings)))
    servers = {}
    for name, authenticator in (
        ("auth", TokenAuthenticator(store)),
        ("open", AdmitEveryone(store)),
    ):
        deps = ApiDeps(settings, reader, store, authenticator, NO_BUDGETS, default_pricer())
        servers[name] = ApiServer(create_api(deps), "127.0.0.1", free_port()).start()
    out_auth = authenticate_us(TokenAuthenticator(store), admin)
    since = (end - timedelta(days=SPAN_DAYS + 1)).isoformat()
    window = {"since": since, "until": (end + timedelta(days=1)).isoformat()}
    out: dict[str, Any] = {**generated, "requests": requests, **out_auth, **request_checks_us()}
    try:
        with httpx.Client(timeout=120) as http:
            for label, path, params, count in (
                ("no_query", "/api/v1/budgets", None, requests * 5),
                ("spend", "/api/v1/spend", {"by": "team", **window}, requests),
            ):
                times: dict[str, list[float]] = {"auth": [], "open": []}
                for index in range(count + 5):
                    for name in ("auth", "open") if index % 2 else ("open", "auth"):
                        ms = _timed(http, servers[name].url + path, admin, params)
                        if index >= 5:  # warm-up
                            times[name].append(ms)
                for name, values in times.items():
                    out[f"{label}.{name}_p50_ms"] = round(percentile(values, 0.5), 3)
                    out[f"{label}.{name}_mean_ms"] = round(sum(values) / len(values), 3)
                # Medians: one noisy neighbour on a shared machine moves a mean by 20 %.
                out[f"{label}.auth_overhead"] = round(
                    out[f"{label}.auth_p50_ms"] / out[f"{label}.open_p50_ms"], 3
                )
                print(f"[bench] api {label}: overhead {out[f'{label}.auth_overhead']}", flush=True)
            for label, query in SPEND_QUERIES.items():
                token = scoped if "scoped" in label else admin
                values = [
                    _timed(http, servers["auth"].url + "/api/v1/spend", token, {**query, **window})
                    for _ in range(max(5, requests // 10))
                ]
                out[f"spend[{label}].p50_ms"] = round(percentile(values, 0.5), 1)
                out[f"spend[{label}].p95_ms"] = round(percentile(values, 0.95), 1)
                print(
                    f"[bench] api spend[{label}] p95 {out[f'spend[{label}].p95_ms']} ms", flush=True
                )
    finally:
        for server in servers.values():
            server.stop()
    return out
