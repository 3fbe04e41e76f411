"""A real ``spendstream worker`` subprocess for integration tests, and ways to wait on it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from spendstream.embedded import free_port
from spendstream.sinks.access import ApiClient, QueryResult, WorkerReader
from tests.support.forkserver import ChildProcess, start_module


def http_get(url: str, **kwargs: Any) -> httpx.Response:
    """``httpx.get`` for the plain-http servers tests start: without a TLS context, whose CA
    store costs ~20 ms of CPU a call (not 1.5 ms) even for http://; a worker start polls
    /healthz 10-30 times."""
    return httpx.get(url, verify=False, **kwargs)


def write_config(
    path: Path, bootstrap: str, dsn: str, extra: str = "", session_timeout_s: float = 6
) -> Path:
    """A worker config file for tests (small batches, short sessions).

    A 6 s group session by default (the worker's is 10 s; heartbeats stay at 1 s): Tansu takes
    about half a session to let each member join, and a SIGKILLed member holds its partitions
    until its session expires, so every start and every kill in a test waits on it."""
    path.write_text(
        f"""
[kafka]
bootstrap_servers = "{bootstrap}"

[clickhouse]
dsn = "{dsn}"

[worker]
batch_size = 2000
batch_within_s = 0.2
session_timeout_s = {session_timeout_s:g}
data_dir = "{path.parent / "worker-state"}"

[log]
level = "info"
format = "json"
{extra}
"""
    )
    return path


@dataclass
class WorkerProcess:
    """``python -m spendstream worker --config FILE`` with its own free web port."""

    config: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    # Forked from the tests' pre-imported server (tests/support/forkserver.py), a subprocess
    # as the tests see it: its own PID to signal, its exit code.
    process: ChildProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_file(self) -> Path:
        """The admin token the worker creates for the tests (``api.admin_token_file``)."""
        return self.config.with_name("admin.token")

    @property
    def admin_token(self) -> str:
        # A worker on a loaded machine may still be bootstrapping its first token.
        wait_until(self.token_file.exists, 60, f"the worker's {self.token_file.name}")
        return self.token_file.read_text().strip()

    def api(self, token: str | None = None) -> ApiClient:
        """A client of the worker's API (default: with the admin token)."""
        return ApiClient(self.url, token if token is not None else self.admin_token)

    def start(self, timeout_s: float = 60.0) -> WorkerProcess:
        self.port = free_port()
        env = {
            **os.environ,
            "SPENDSTREAM_API__ADMIN_TOKEN_FILE": str(self.token_file),
            **self.env,
            "SPENDSTREAM_WORKER__WEB_PORT": str(self.port),
        }
        with self.log_path.open("ab") as log:
            args = ["worker", "--config", str(self.config)]
            self.process = start_module("spendstream", args, env, log)
        wait_until(self._healthy, timeout_s, f"worker healthy at {self.url}")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"worker exited ({self.process.returncode}); see {self.log_path}")
        try:
            return http_get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        """Send ``sig`` and wait; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout_s)
        self.process = None
        return code

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult:
        return WorkerReader(self.api()).query(sql, parameters)

    def scalar(self, sql: str) -> Any:
        return self.query(sql).rows[0][0]

    def wait_for_ledger_count(self, expected: int, timeout_s: float = 120.0) -> None:
        """Wait until the deduplicated ledger holds ``expected`` events and the rollups have
        caught up with it (:meth:`wait_for_rollups`)."""
        wait_until(
            lambda: int(self.scalar("SELECT count() FROM ledger FINAL")) >= expected,
            timeout_s,
            f"{expected} events in the ledger",
        )
        self.wait_for_rollups(timeout_s)

    def wait_for_rollups(self, timeout_s: float = 60.0) -> None:
        """Wait until the minute, hour and day rollups hold the ledger's events and cost. The
        open hour and day are refreshed when the stream drains (``sinks.open_windows``), a
        moment after the last insert is visible; a worker that never settles fails here."""

        def totals(table: str, events: str) -> tuple[int, Decimal]:
            count, cost = self.query(f"SELECT {events}, sum(cost_total) FROM {table} FINAL").rows[0]
            return int(count), Decimal(str(cost))

        def settled() -> bool:
            ledger = totals("ledger", "count()")
            return all(
                totals(table, "sum(events)") == ledger
                for table in ("rollup_minute", "rollup_hour", "rollup_day")
            )

        wait_until(settled, timeout_s, "rollups equal to the ledger")

    def metric(self, name: str) -> float:
        """A counter's value from the worker's /metrics page (0 when absent)."""
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        answer = http_get(f"{self.url}/metrics", headers=headers, timeout=5)
        if answer.status_code != 200:  # never read a refusal as "0"
            raise RuntimeError(f"/metrics answered {answer.status_code}: {answer.text[:300]}")
        text = answer.text
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "_total "):
                return float(line.split()[-1])
        return 0.0


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def decimal_rows(result: QueryResult) -> dict[str, Decimal]:
    """``key, amount`` rows (as served by the API, amounts as strings) into exact Decimals."""
    return {str(row[0]): Decimal(str(row[1])) for row in result.rows}
