"""A running worker with two teams of data, budgets and one token per role, for API tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from spendstream.embedded import TansuBroker
from spendstream.events import UsageEvent
from tests.support.ledger_template import copy_template
from tests.support.traffic import publish
from tests.support.worker import WorkerProcess, write_config

BUDGETS = """
[alerts]
group_wait = "0.5s"

[[budgets]]
name = "alpha-month"
scope = { team = "alpha" }
limit = "1000"
thresholds = [100]
forecast = false

[[budgets]]
name = "beta-month"
scope = { team = "beta" }
limit = "1000"
thresholds = [100]
forecast = false
"""
# Small limits so hostile queries fail fast; an auth-failure brake the tests can reach.
WORKER_ENV = {
    "SPENDSTREAM_API__MAX_EXECUTION_TIME_S": "2",
    "SPENDSTREAM_API__MAX_RESULT_ROWS": "1000",
    "SPENDSTREAM_API__MAX_BODY_BYTES": "65536",
    "SPENDSTREAM_API__AUTH_CACHE_S": "0.5",
}


def team_events(team: str, count: int, start: int = 0) -> list[UsageEvent]:
    """``count`` calls a second apart from 30 minutes ago, all within today (UTC): pages and
    quotas that show today's spend have it even just after midnight (the calls are then packed
    between midnight and now)."""
    now = datetime.now(UTC)
    first = max(now - timedelta(minutes=30), now.replace(hour=0, minute=0, second=0, microsecond=0))
    step = min(timedelta(seconds=1), (now - first) / (start + count + 1))
    return [
        UsageEvent(
            event_id=f"{team}-{i}",
            event_time=first + step * i,
            provider="openai",
            model="gpt-4o-mini" if i % 2 else "gpt-4o",
            input_tokens=1_000 + i,
            output_tokens=100 + i,
            tags={"team": team, "app": f"{team}-app-{i % 3}", "user": f"u{i % 4}"},
        )
        for i in range(start, start + count)
    ]


@dataclass
class ApiEnv:
    broker: TansuBroker
    worker: WorkerProcess
    tokens: dict[str, str] = field(default_factory=dict)
    published: int = 0

    @property
    def base(self) -> str:
        return f"{self.worker.url}/api/v1"

    def root(
        self, path: str, token: str | None = None, source: str = "127.0.0.1"
    ) -> httpx.Response:
        """A GET outside ``/api/v1`` (health, metrics)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = httpx.HTTPTransport(local_address=source, verify=False)  # http: no CA store
        with httpx.Client(transport=transport, timeout=30) as client:
            return client.get(f"{self.worker.url}{path}", headers=headers)

    def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        source: str = "127.0.0.1",
        root: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """A raw request from loopback address ``source`` (auth failures are counted per
        client address) to ``/api/v1{path}`` (``root``: to ``{path}``)."""
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        transport = httpx.HTTPTransport(local_address=source, verify=False)  # http: no CA store
        base = self.worker.url if root else self.base
        with httpx.Client(transport=transport, timeout=60) as client:
            return client.request(method, f"{base}{path}", headers=headers, **kwargs)

    def publish(self, events: list[UsageEvent]) -> None:
        publish(self.broker.bootstrap_servers, [e.to_json_bytes() for e in events])
        self.published += len(events)

    def create_token(
        self, name: str, role: str, teams: list[str], expires: str | None = None
    ) -> str:
        body = {"name": name, "role": role, "teams": teams, "expires": expires}
        return str(self.worker.api().post("/tokens", body)["token"])


def start_env(tmp: Path, template: Path, extra_config: str = "") -> Iterator[ApiEnv]:
    """The worker with BUDGETS (and ``extra_config``, e.g. quotas), both teams' traffic and
    one token per role, on a copy of ``template`` (the session's ``migrated_template``: the
    worker migrates nothing)."""
    with TansuBroker(log_path=tmp / "tansu.log") as broker:
        config = write_config(
            tmp / "spendstream.toml",
            broker.bootstrap_servers,
            f"chdb://{copy_template(template, tmp / 'clickhouse')}",
            BUDGETS + extra_config,
        )
        worker = WorkerProcess(config, tmp / "worker.log", env=WORKER_ENV).start()
        try:
            env = ApiEnv(broker, worker)
            env.publish(team_events("alpha", 30) + team_events("beta", 20))
            worker.wait_for_ledger_count(env.published)
            for name, role, teams in (
                ("viewer-alpha", "viewer", ["alpha"]),
                ("viewer-all", "viewer", []),
                ("operator-alpha", "operator", ["alpha"]),
                ("admin-alpha", "admin", ["alpha"]),
                ("service", "service", []),
            ):
                env.tokens[name] = env.create_token(name, role, teams)
            env.tokens["admin"] = worker.admin_token
            yield env
        finally:
            worker.stop()
