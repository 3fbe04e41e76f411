"""Three workers on one ClickHouse (chDB serving HTTP): exactly one evaluates budgets and sends
alerts, through two SIGKILLs of whichever worker holds the evaluator lease; partitions shared
and rebalanced over three workers keep the ledger, every rollup and the reports exact."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from spendstream.config import load_settings
from spendstream.embedded import TansuBroker
from spendstream.sinks.access import DirectReader
from spendstream.sinks.queries import spend_report_sql
from tests.support.chdb_http import ChdbHttpServer
from tests.support.slack_server import SlackServer
from tests.support.smtp_server import SmtpServer
from tests.support.traffic import publish as publish_raw
from tests.support.worker import WorkerProcess, wait_until, write_config
from tests.test_alerts_worker import config_text, cost, publish, search_event
from tests.test_exactness import (
    Workers,
    assert_exact_totals,
    expected_totals,
    make_events,
    wait_rows,
)

pytestmark = pytest.mark.integration

LEASE = "[leadership]\nlease_ttl_s = 3.0\nrenew_every_s = 0.5\n"


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


@pytest.mark.heavy
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
        # A batch wakes the evaluation only on the worker that consumed it; when that is not
        # the evaluator, the alert waits for the evaluator's full pass (30 s by default).
        LEASE + config_text(limit, slack, smtp, 'evaluate_every = "2s"'),
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
        # At least three workers held it (a loaded holder may also lapse and win again: fenced).
        assert len(holders) >= 3 and len({row[1] for row in holders}) >= 3
        assert len(set(terms)) == 2  # two different workers were killed
    finally:
        for worker in workers:
            if worker.process is not None:
                worker.stop()


@pytest.mark.heavy
def test_three_workers_and_a_rebalance_stay_exact(
    tmp_path: Path, broker: TansuBroker, clickhouse_server: ChdbHttpServer
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    events = make_events(12_000, "scale", now - timedelta(hours=3), timedelta(hours=2), seed=13)
    payloads = [event.to_json_bytes() for event in events]
    config = write_config(
        tmp_path / "workers.toml", broker.bootstrap_servers, clickhouse_server.dsn
    )
    workers = Workers(config, tmp_path, {"SPENDSTREAM_WORKER__SESSION_TIMEOUT_S": "6"})
    reader = DirectReader(load_settings(config))
    try:
        for name in ("a", "b"):
            workers.start(name)
        publish_raw(broker.bootstrap_servers, payloads[:6_000])
        wait_rows(reader, 2_000)
        third = workers.start("c")  # joins mid-stream: the group rebalances over three
        for start in range(6_000, len(payloads), 1_000):
            publish_raw(broker.bootstrap_servers, payloads[start : start + 1_000])
            time.sleep(0.5)
        wait_until(
            lambda: int(reader.query("SELECT count() FROM ledger FINAL").rows[0][0]) >= len(events),
            120,
            "every event in the ledger",
        )
        written = [w.metric("spendstream_batches_written") for w in workers.started]
        assert sum(1 for n in written if n > 0) >= 2, written  # partitions were shared
        assert third.process is not None
        third.wait_for_rollups()  # rollups equal the ledger after the drain that follows
        assert_exact_totals(reader, events)
        since, until = now - timedelta(hours=3, minutes=7), now
        for by in (["team"], ["model"]):
            sql, params = spend_report_sql(by, since, until, limit=100)
            report = {str(row[0]): Decimal(str(row[1])) for row in reader.query(sql, params).rows}
            key = (lambda e: e.tags["team"]) if by == ["team"] else (lambda e: e.model)
            assert report == expected_totals(events, key)
    finally:
        workers.stop_all()
