"""A ClickHouse server outage while events flow: backpressure, retries, nothing lost or doubled.

The worker reaches a real ClickHouse HTTP server (chDB serving a data directory, see
``tests/support/chdb_http.py``). The server is stopped mid-stream for ``OUTAGE_S`` seconds while
valid and malformed events keep arriving, then restarted on the same directory and port. The
worker must block in its ledger write (consuming nothing more), commit no offset for anything
not yet in the ledger, keep its group membership, reconnect, and end with every event exactly
once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from kafka.admin import KafkaAdminClient

from spendstream.config import load_settings
from spendstream.embedded import TansuBroker
from spendstream.pricing import default_pricer
from spendstream.sinks.access import DirectReader
from spendstream.sinks.ledger import LedgerEntry, LedgerWriter
from spendstream.sinks.price_versions import register_price_version
from spendstream.stream.deadletter import DeadLetter
from spendstream.stream.pipeline import Pipeline
from spendstream.stream.processor import BatchProcessor, RawMessage
from tests import test_exactness
from tests.support.api_env import BUDGETS, ApiEnv, team_events
from tests.support.browser import chromium, log_in
from tests.support.chdb_http import ChdbHttpServer
from tests.support.cli import spendstream
from tests.support.traffic import USAGE_TOPIC, publish, read_dead_letters
from tests.support.worker import wait_until, write_config
from tests.test_exactness import Workers, assert_exact_totals, make_events

pytestmark = pytest.mark.integration

# Shared fixtures: a chDB HTTP server and workers reaching it through an http:// DSN.
http_workers = test_exactness.http_workers

# Longer than three of the workers' 6 s group sessions (``http_workers``: heartbeating while
# blocked matters) and ten times the back-off ceiling below (reached within seconds): the 60 s
# that issue 6 names. SPENDSTREAM_TEST_OUTAGE_S=20 runs a shorter one for the inner loop.
OUTAGE_S = float(os.environ.get("SPENDSTREAM_TEST_OUTAGE_S", "60"))
RETRY_MAX_S = 2.0  # back-off ceiling for this test (default 30 s) so recovery is prompt
BATCH_SIZE = 2000  # tests.support.worker.write_config


def committed(admin: KafkaAdminClient, group: str) -> dict[int, int]:
    """The group's committed offsets on the usage topic, by partition."""
    offsets = admin.list_group_offsets(group)[group]
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == USAGE_TOPIC}


@pytest.mark.heavy
def test_clickhouse_outage_backpressure_then_exact_recovery(
    broker: TansuBroker, clickhouse_server: ChdbHttpServer, http_workers: Workers
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    events = make_events(20_000, "out", now - timedelta(hours=1), timedelta(minutes=50), seed=21)
    before, during = events[:10_000], events[10_000:]
    malformed = [f"not json {index}".encode() for index in range(10)]
    http_workers.env["SPENDSTREAM_WORKER__SINK_RETRY_MAX_S"] = str(RETRY_MAX_S)
    # The counters are read during the outage with the admin token ("token" mode, the default):
    # the worker loaded its tokens when its API started (TokenAuthenticator.prime).
    settings = load_settings(http_workers.config)
    worker = http_workers.start("worker")
    reader = DirectReader(settings)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    group = settings.worker.app_id

    publish(broker.bootstrap_servers, [event.to_json_bytes() for event in before])
    wait_until(
        lambda: int(reader.query("SELECT count() FROM ledger").rows[0][0]) >= 3_000,
        60,
        "the worker writing",
    )
    clickhouse_server.stop()  # mid-stream: batches are in flight
    stopped = datetime.now(UTC)
    outage_started = time.monotonic()
    time.sleep(3)  # let the worker commit what it wrote before the outage
    at_outage = committed(admin, group)
    consumed_at_outage = worker.metric("spendstream_events_in")

    slices = [during[index::4] for index in range(4)]
    for number, chunk in enumerate(slices):
        payloads = [event.to_json_bytes() for event in chunk]
        for bad in malformed[number :: len(slices)]:
            payloads.insert(len(payloads) // 2, bad)
        publish(broker.bootstrap_servers, payloads)
        while time.monotonic() - outage_started < OUTAGE_S * (number + 1) / len(slices):
            time.sleep(0.5)
            assert committed(admin, group) == at_outage, "offsets committed while ClickHouse down"
    assert worker.process is not None and worker.process.poll() is None
    with pytest.raises(RuntimeError):
        worker.query("SELECT 1")  # the read path reports the outage instead of hanging
    # Backpressure: while the write retries, the worker takes at most the batch in hand and
    # the one buffered behind it, not the 10,000 events published meanwhile.
    consumed = worker.metric("spendstream_events_in")
    assert consumed - consumed_at_outage <= 2 * BATCH_SIZE
    assert worker.metric("spendstream_sink_errors") > 0

    clickhouse_server.start()  # same directory, same port
    restarted = time.monotonic()
    wait_until(
        lambda: int(reader.query("SELECT count() FROM ledger FINAL").rows[0][0]) >= len(events),
        60,
        "every event in the ledger after the outage",
    )
    recovery_s = time.monotonic() - restarted
    # Rollups equal the ledger after the drain that follows (the open hour's windows, and the
    # closed minutes of it that came late, are refreshed then), a moment after the last insert
    # is visible: wait for it, as the other exactness tests do (Worker.wait_for_ledger_count).
    worker.wait_for_rollups()
    rows = int(reader.query("SELECT count() FROM ledger").rows[0][0])
    print(
        f"\noutage {OUTAGE_S:.0f}s: consumed during outage {consumed - consumed_at_outage:.0f}, "
        f"sink errors {worker.metric('spendstream_sink_errors'):.0f}, "
        f"caught up {recovery_s:.1f}s after restart, ledger rows {rows} (FINAL {len(events)})"
    )

    assert_exact_totals(reader, events)
    assert int(worker.scalar("SELECT count() FROM ledger FINAL")) == len(events)  # reader back
    # Nothing was acknowledged before its ledger insert: every offset committed during the
    # outage belongs to an event that reached the ledger before the server stopped.
    for partition, offset in at_outage.items():
        written_before = reader.query(
            "SELECT count() FROM ledger FINAL WHERE kafka_topic = {topic:String} AND "
            "kafka_partition = {p:UInt32} AND kafka_offset < {o:UInt64} "
            "AND ingested_at < {stopped:DateTime64(3)}",
            {"topic": USAGE_TOPIC, "p": partition, "o": offset, "stopped": stopped},
        ).rows[0][0]
        assert int(written_before) == offset, partition
    wait_until(
        lambda: sum(committed(admin, group).values()) == len(events) + len(malformed),
        30,
        "every offset committed after recovery",
    )
    admin.close()
    assert sorted(
        [letter.raw_payload() for letter in read_dead_letters(broker.bootstrap_servers)]
    ) == sorted(malformed)


def test_pipeline_retries_failed_steps_instead_of_raising(ledger_client: Client) -> None:
    """Faust's ``take_events`` acks a batch in a ``finally`` even when the agent raises (and the
    crashed agent is not restarted): seen here as 400 valid events lost when a dead letter could
    not be published. So ``Pipeline.handle`` must retry, never raise."""
    published: list[DeadLetter] = []
    attempts = 0

    class FlakyDeadLetters:
        async def publish(self, letters: Sequence[DeadLetter]) -> None:
            nonlocal attempts
            attempts += 1
            if attempts <= 2:
                raise RuntimeError("broker said no")
            published.extend(letters)

    class FailingObserver:
        async def on_batch(self, entries: Sequence[LedgerEntry]) -> None:
            raise RuntimeError("observer bug")

    pricer = default_pricer()
    version = register_price_version(ledger_client, pricer.catalog_digest)
    pipeline = Pipeline(
        BatchProcessor(pricer),
        LedgerWriter(ledger_client, version),
        FlakyDeadLetters(),
        observers=[FailingObserver()],
        retry_max_s=0.05,
    )
    events = make_events(50, "unit", datetime.now(UTC) - timedelta(hours=1), timedelta(hours=1), 3)
    values = [event.to_json_bytes() for event in events] + [b"not json", b"{}"]
    messages = [RawMessage(value, USAGE_TOPIC, 0, offset) for offset, value in enumerate(values)]
    try:
        asyncio.run(pipeline.handle(messages))  # returns: no exception reaches Faust
    finally:
        pipeline.close()
    assert attempts == 3
    assert sorted(letter.raw_payload() for letter in published) == [b"not json", b"{}"]
    assert ledger_client.query("SELECT count() FROM ledger FINAL").result_rows[0][0] == 50


def test_api_and_cli_tell_the_truth_while_clickhouse_is_down(
    tmp_path: Path, broker: TansuBroker, clickhouse_server: ChdbHttpServer
) -> None:
    """ClickHouse stops under a running worker: every read answers 503 with Retry-After (not
    400, not 500), the CLI exits 3 saying so, budget status errs instead of "nothing firing",
    and everything answers again once the server is back."""
    config = write_config(
        tmp_path / "truth.toml", broker.bootstrap_servers, clickhouse_server.dsn, BUDGETS
    )
    workers = Workers(config, tmp_path)
    with contextlib.ExitStack() as stack:
        stack.callback(workers.stop_all)
        worker = workers.start("worker")
        api = ApiEnv(broker, worker)
        api.publish(team_events("alpha", 20))
        worker.wait_for_ledger_count(api.published)
        token = worker.admin_token
        reads: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", "/spend", {}),
            ("GET", "/budgets/status", {}),
            ("GET", "/alerts", {}),
            ("GET", "/audits/token_trends", {}),
            ("GET", "/freshness", {}),  # the dashboard's
            ("POST", "/sql", {"json": {"query": "SELECT count() FROM ledger"}}),
        ]
        assert [api.call(m, p, token, **kw).status_code for m, p, kw in reads] == [200] * 6
        browser = stack.enter_context(chromium())
        page = browser.new_context(viewport={"width": 1100, "height": 500}).new_page()
        page.set_default_timeout(90_000)  # a shared 2-core machine can be slow; never a bound
        log_in(page, worker.url, token)

        clickhouse_server.stop()
        page.goto(f"{worker.url}/")  # the dashboard says so and reloads itself
        page.get_by_text("Storage unavailable, retrying in").first.wait_for()
        page.screenshot(path=str(tmp_path / "dashboard-unavailable.png"))
        for method, path, kwargs in reads:
            answer = api.call(method, path, token, **kwargs)
            assert answer.status_code == 503, (path, answer.text)
            assert int(answer.headers["Retry-After"]) >= 1
            assert answer.json()["detail"].startswith("ClickHouse unavailable"), path
        for command in (["report"], ["budgets", "status"], ["sql", "SELECT 1"]):
            cli = spendstream(*command, "--config", str(config), cwd=tmp_path)
            assert cli.returncode == 3, (command, cli.stderr)
            assert "error: ClickHouse unavailable" in cli.stderr
            assert "nothing was changed; retry in" in cli.stderr
        assert "unexpected error" not in worker.log_path.read_text()  # no outage was a bug

        clickhouse_server.start()
        wait_until(
            lambda: all(api.call(m, p, token, **kw).status_code == 200 for m, p, kw in reads),
            60,
            "every read answering after the outage",
        )
        back = spendstream("budgets", "status", "-f", "json", "--config", str(config), cwd=tmp_path)
        assert back.returncode == 0, back.stderr
        page.locator("#spend-month[data-exact]").wait_for()  # the page came back by itself
        assert page.locator("#error").is_hidden()
        assert {row["budget"] for row in map(json.loads, back.stdout.splitlines())} == {
            "alpha-month",
            "beta-month",
        }
