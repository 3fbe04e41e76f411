"""The worker waits for a ClickHouse server that comes up after it, then processes normally."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer

from spendstream.embedded import TansuBroker, free_port
from spendstream.events import UsageEvent
from tests.support.chdb_http import ChdbHttpServer
from tests.support.cli import spendstream
from tests.support.worker import WorkerProcess, write_config

pytestmark = pytest.mark.integration


def test_worker_waits_for_clickhouse_server_started_after_it(
    tmp_path: Path, broker: TansuBroker
) -> None:
    server = ChdbHttpServer(tmp_path / "clickhouse", port=free_port())
    config = write_config(tmp_path / "w.toml", broker.bootstrap_servers, server.dsn)
    worker = WorkerProcess(config, tmp_path / "worker.log")
    # start() blocks until the worker is healthy, which needs ClickHouse: run it meanwhile.
    starting = threading.Thread(target=worker.start, kwargs={"timeout_s": 90})
    starting.start()
    # Start the server only once the worker has seen it missing (however loaded the machine).
    deadline = time.monotonic() + 60
    while "ClickHouse not reachable; retrying" not in read_log(worker.log_path):
        assert time.monotonic() < deadline, "worker never reported ClickHouse unreachable"
        time.sleep(0.2)
    assert worker.process is not None and worker.process.poll() is None, "worker gave up"
    with server:
        starting.join()
        try:
            producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
            for index in range(100):
                event = UsageEvent(provider="openai", model="gpt-4o", input_tokens=index + 1)
                producer.send("spendstream.usage.v1", event.to_json_bytes())
            producer.flush()
            producer.close()
            worker.wait_for_ledger_count(100)
        finally:
            worker.stop()


def test_worker_gives_up_with_a_clear_error_when_clickhouse_stays_down(tmp_path: Path) -> None:
    config = tmp_path / "down.toml"
    config.write_text(
        f'[clickhouse]\ndsn = "http://127.0.0.1:{free_port()}"\n[worker]\nstartup_timeout_s = 2\n'
    )
    started = time.monotonic()
    result = spendstream("worker", "--config", str(config), cwd=tmp_path, timeout=60)
    assert result.returncode == 3  # unavailable (docs/cli.md)
    assert "not reachable after 2s (worker.startup_timeout_s)" in result.stderr
    assert time.monotonic() - started >= 2


def read_log(path: Path) -> str:
    return path.read_text() if path.exists() else ""


HOLD = """\
import sys, time
from spendstream.sinks.client import connect
client = connect("chdb://" + sys.argv[1], "spendstream")  # held while referenced
print("held", flush=True)
time.sleep(120)
"""


def test_a_second_worker_on_a_held_chdb_directory_exits_2_naming_it(tmp_path: Path) -> None:
    """Waiting does not free a directory another process holds: no retries, exit 2 naming the
    directory and the holder, not "ClickHouse not reachable"."""
    directory = tmp_path / "clickhouse"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        config = tmp_path / "second.toml"
        config.write_text(
            f'[clickhouse]\ndsn = "chdb://{directory}"\n[worker]\nstartup_timeout_s = 30\n'
        )
        started = time.monotonic()
        result = spendstream("worker", "--config", str(config), cwd=tmp_path, timeout=60)
        took = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    said = " ".join(result.stderr.split())
    assert result.returncode == 2, result.stderr
    assert (
        f"the chDB directory {directory} is locked by another process (PID: {holder.pid})" in said
    )
    assert "another worker or `spendstream dev` holds it" in said
    assert "not reachable" not in said
    assert took < 30  # gave up at once, not after worker.startup_timeout_s of retries
