"""Shared fixtures: a real Tansu broker, a chDB directory, and a real worker process."""

from __future__ import annotations

import compileall
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.embedded import TansuBroker
from spendstream.sinks.client import connect
from tests.support.chdb_http import ChdbHttpServer
from tests.support.ledger_template import DATABASE, copy_template, make_template
from tests.support.slack_server import SlackServer
from tests.support.smtp_server import SmtpServer
from tests.support.worker import WorkerProcess, write_config

# LiteLLM fetches its price map from the internet at import unless told not to (no network here).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Writes the bytecode of the code the tests' subprocesses import, once per run (in the
    controller: xdist workers have ``workerinput``). Where PYTHONDONTWRITEBYTECODE is set (it is
    on these machines), no process writes it, so every worker start and CLI call compiled the
    package's ~260 modules from source again: ~0.25 CPU-s each (docs/testing.md)."""
    if not hasattr(config, "workerinput"):
        for package in ("spendstream", "tests/support", "bench"):
            compileall.compile_dir(ROOT / package, quiet=1)
    # pytest keeps the assert-rewritten test modules (~160) as bytecode only where bytecode may
    # be written; without it every pytest process rewrote them all again: ~5 CPU-s of each
    # xdist worker's collection (written atomically, so concurrent workers are safe).
    sys.dont_write_bytecode = False


# A test that asks for one of these stores in a real chDB in its own process: marked ``storage``,
# so that `make check` (``-m "not integration and not storage"``) is the pure logic checks.
STORAGE_FIXTURES = frozenset({"ledger_client", "chdb_path", "chdb_dsn", "migrated_template"})


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks the tests that use real storage ``storage`` (:data:`STORAGE_FIXTURES`), then
    sorts longest first: the minute-long end-to-end tests (marked ``heavy``), then the other
    integration tests, then the unit tests that fill the gaps. With ``--maxschedchunk=1``
    (``make test``) xdist hands tests out one or two at a time in this order, so the long tests
    spread over the workers and none starts last to hold the suite up alone."""
    for item in items:
        if STORAGE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.storage)

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("heavy"):
            return 0
        return 1 if item.get_closest_marker("integration") else 2

    items.sort(key=rank)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[TansuBroker]:
    with TansuBroker(log_path=tmp_path / "tansu.log") as running:
        yield running


@pytest.fixture
def chdb_dsn(tmp_path: Path, migrated_template: Path) -> str:
    """A migrated chDB directory of the test's own (a copy of ``migrated_template``): a worker
    started on it finds every migration applied (~1 s of CPU less per start). Tests of the
    worker migrating a fresh or older directory make their own. Not ``tmp_path/clickhouse``:
    tests that pass ``start_worker`` a config of their own keep that directory for theirs."""
    return f"chdb://{copy_template(migrated_template, tmp_path / 'ledger')}"


@pytest.fixture
def worker_config(tmp_path: Path, broker: TansuBroker, chdb_dsn: str) -> Path:
    return write_config(tmp_path / "spendstream.toml", broker.bootstrap_servers, chdb_dsn)


@pytest.fixture
def start_worker(tmp_path: Path, worker_config: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start workers on the test's config; every one still running is killed at teardown.

    SIGKILL, not SIGTERM: the test is over and its broker and directories go with it, and a
    graceful stop costs ~2 s of Faust shutdown per worker. Tests of stopping stop their own."""
    started: list[WorkerProcess] = []

    def start(config: Path | None = None, name: str = "worker") -> WorkerProcess:
        worker = WorkerProcess(config or worker_config, tmp_path / f"{name}.log").start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process is not None:
            worker.stop(signal.SIGKILL)


@pytest.fixture
def chdb_path(tmp_path: Path) -> Path:
    return tmp_path / "clickhouse"


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A chDB directory with every migration applied, once per test process."""
    return make_template(tmp_path_factory.mktemp("migrated") / "clickhouse")


@pytest.fixture
def ledger_client(chdb_path: Path, migrated_template: Path) -> Iterator[Client]:
    """A client of a migrated ledger of the test's own (a copy of ``migrated_template``)."""
    client = connect(f"chdb://{copy_template(migrated_template, chdb_path)}", DATABASE)
    yield client
    client.close()


@pytest.fixture
def clickhouse_server(tmp_path: Path, migrated_template: Path) -> Iterator[ChdbHttpServer]:
    """chDB over HTTP on a copy of the migrated template: whatever connects finds every
    migration applied (migrating a fresh directory over HTTP costs the server ~1.3 CPU-s and
    the client as much again). Tests of migrating over HTTP serve a directory of their own."""
    data = copy_template(migrated_template, tmp_path / "clickhouse")
    with ChdbHttpServer(data, log_path=tmp_path / "chdb-http.log") as server:
        yield server


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    """An HTTP server on 127.0.0.1 receiving Slack webhook posts."""
    server = SlackServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """An aiosmtpd SMTP server on 127.0.0.1."""
    with SmtpServer() as server:
        yield server
