"""Three workers on one ClickHouse (chDB serving HTTP): exactly one evaluates budgets and sends
alerts, through two SIGKILLs of whichever worker holds the evaluator lease."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spendstream.config import load_settings
from spendstream.embedded import TansuBroker
from spendstream.sinks.access import DirectReader
from tests.support.chdb_http import ChdbHttpServer
from tests.support.slack_server import SlackServer
from tests.support.smtp_server import SmtpServer
from tests.support.worker import WorkerProcess, wait_until, write_config
from tests.test_alerts_worker import config_text, cost, publish, search_event

pytestmark = pytest.mark.integration

LEASE = "[leadership]\nlease_ttl_s = 2.0\nrenew_every_s = 0.5\n"


@pytest.fixture
def clickhouse_server(tmp_path: Path) -> Iterator[ChdbHttpServer]:
    with ChdbHttpServer(tmp_path / "clickhouse", log_path=tmp_path / "chdb-http.log") as server:
        yield server


def leader_pid(reader: DirectReader) -> int:
    """The pid of the process holding the latest evaluator term (holder = host:pid:suffix)."""
    rows = reader.query(
        "SELECT holder FROM leader_terms WHERE name = 'evaluator' ORDER BY term DESC LIMIT 1"
    ).rows
    return int(str(rows[0][0]).split(":")[1]) if rows else 0


def delivered(reader: DirectReader) -> int:
    rows = reader.query(
        "SELECT count() FROM alert_deliveries FINAL WHERE status = 'delivered'"
    ).rows
    return int(rows[0][0])


def test_one_evaluator_among_three_workers_through_two_sigkills(
    tmp_path: Path,
    broker: TansuBroker,
    clickhouse_server: ChdbHttpServer,
    slack: SlackServer,
    smtp: SmtpServer,
) -> None:
    events = [search_event(i) for i in range(10)]
    limit = cost(events)  # events 0-4 reach 50 %, 0-7 reach 80 %, all ten 100 %
    config = write_config(
        tmp_path / "spendstream.toml",
        broker.bootstrap_servers,
        clickhouse_server.dsn,
        LEASE + config_text(limit, slack, smtp),
    )
    env = {"SPENDSTREAM_WORKER__SESSION_TIMEOUT_S": "6"}
    workers = [
        WorkerProcess(config, tmp_path / f"worker-{i}.log", env=env).start() for i in range(3)
    ]
    reader = DirectReader(load_settings(config))
    terms: list[int] = []
    try:
        for step, upto in enumerate((5, 8, 10)):
            publish(broker.bootstrap_servers, events[:upto])
            wait_until(
                lambda n=step + 1: len(slack.received) >= n and len(smtp.messages) >= n,
                90,
                f"alert {step + 1} on Slack and by mail",
            )
            # Recorded as delivered before the kill (a kill between send and record resends).
            wait_until(lambda n=step + 1: delivered(reader) >= 2 * n, 30, "outcomes recorded")
            if step == 2:
                break
            pid = leader_pid(reader)
            terms.append(pid)
            victim = next(w for w in workers if w.process and w.process.pid == pid)
            victim.stop(signal.SIGKILL)
            killed = time.monotonic()
            wait_until(lambda p=pid: leader_pid(reader) not in (0, p), 30, "a new evaluator")
            print(f"\nfailover {step + 1}: {time.monotonic() - killed:.2f} s")
        time.sleep(3)  # evaluation and dispatch passes of the survivor: nothing is sent again
        assert (len(slack.received), len(smtp.messages)) == (3, 3)
        for threshold, text in zip((50, 80, 100), slack.texts(), strict=True):
            assert f"search-month: {threshold}% of budget reached" in text
        for threshold, text in zip((50, 80, 100), smtp.texts(), strict=True):
            assert f"search-month: {threshold}% of budget reached" in text
        holders = reader.query(
            "SELECT term, holder FROM leader_terms WHERE name = 'evaluator' ORDER BY term"
        ).rows
        assert len(holders) >= 3 and len({row[1] for row in holders}) == len(holders)
        assert len(set(terms)) == 2  # two different workers were killed
    finally:
        for worker in workers:
            if worker.process is not None:
                worker.stop()
