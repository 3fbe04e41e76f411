"""Build, start, stop: a stopped worker leaves no thread, socket or ClickHouse client behind;
during a ClickHouse outage /metrics still answers a valid token and SIGTERM still stops it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spendstream.embedded import TansuBroker, free_port
from spendstream.stream.pipeline import EXIT_STOPPED
from tests.support.api_env import BUDGETS
from tests.support.chdb_http import ChdbHttpServer
from tests.support.traffic import publish
from tests.support.worker import WorkerProcess, wait_until, write_config
from tests.test_exactness import make_events

pytestmark = pytest.mark.integration

QUOTA = """
[[quotas]]
name = "team-daily"
scope = { team = "alpha" }
limit = "100"
per = "day"
"""
ROOT = Path(__file__).resolve().parent.parent


def test_a_stopped_worker_leaves_no_thread_socket_or_client(
    tmp_path: Path, broker: TansuBroker
) -> None:
    """The real worker (API, alerting, quotas, admission feed, Faust) runs in one process, is
    used, gets SIGTERM, and is inspected from the same process once ``run_worker`` returns."""
    config = write_config(
        tmp_path / "w.toml",
        broker.bootstrap_servers,
        f"chdb://{tmp_path / 'clickhouse'}",
        extra=f'[api]\nadmin_token_file = "{tmp_path / "admin.token"}"\n' + BUDGETS + QUOTA,
    )
    probe = subprocess.run(
        [sys.executable, "-m", "tests.support.lifecycle_probe", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "SPENDSTREAM_WORKER__WEB_PORT": str(free_port())},
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    assert seen["metrics"] == 200 and seen["ingest"] == 200, seen
    assert seen["threads"] == [], seen  # every thread started was stopped and joined
    assert seen["sockets"] == 0, seen  # API listener, Kafka and ClickHouse connections closed
    assert seen["second_directory"] == "opened", seen  # no chDB client left open


def test_worker_stops_on_sigterm_while_clickhouse_is_down(
    tmp_path: Path, broker: TansuBroker
) -> None:
    """ClickHouse stops under a worker holding a batch it cannot write; SIGTERM still ends the
    worker promptly, without acknowledging that batch (it is written after a restart)."""
    server = ChdbHttpServer(tmp_path / "clickhouse", port=free_port())
    config = write_config(tmp_path / "w.toml", broker.bootstrap_servers, server.dsn)
    worker = WorkerProcess(config, tmp_path / "worker.log")
    now = datetime.now(UTC).replace(microsecond=0)
    events = make_events(500, "term", now - timedelta(minutes=30), timedelta(minutes=20), seed=5)
    with server:
        worker.start(timeout_s=90)
        server.stop()
        publish(broker.bootstrap_servers, [event.to_json_bytes() for event in events])
        wait_until(
            lambda: "ledger write failed; retrying" in worker.log_path.read_text(),
            60,
            "the worker retrying its write",
        )
        # /metrics in token mode during the outage, with a token this worker never verified on
        # a request (tokens are loaded when the API starts): counters, not a 503.
        time.sleep(6)  # past [api] auth_cache_s (5 s): the lookup reaches the stopped server
        assert worker.metric("spendstream_sink_errors") > 0
        assert worker.process is not None
        worker.process.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        code = worker.process.wait(60)
        took = time.monotonic() - stopped
        worker.process = None
        assert took < 30, f"stopped {took:.1f}s after SIGTERM"
        # Not a clean stop: the batch in hand could not be stored, so it is not acknowledged.
        assert code == EXIT_STOPPED, worker.log_path.read_text()[-3000:]
        assert "stopping while the ledger is unreachable" in worker.log_path.read_text()
        server.start()
        worker.start(timeout_s=90)
        try:
            worker.wait_for_ledger_count(len(events))  # the held batch was not acknowledged
        finally:
            worker.stop()
