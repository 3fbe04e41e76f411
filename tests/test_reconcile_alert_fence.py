"""``reconcile alert --send`` beside a running worker (issue 24): the command enqueues, only the
holder of the alerting lease sends, so every alert goes out exactly once. Worker and command
share one ClickHouse (chDB serving HTTP), as they must in production."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spendstream.cli.reconcile import reconcile_app
from spendstream.embedded import TansuBroker
from spendstream.leadership import LeaseStore
from spendstream.notifications.fenced import ALERTING_LEASE
from spendstream.sinks.client import connect
from tests.support.chdb_http import ChdbHttpServer
from tests.support.ledger_data import fill_ledger
from tests.support.reconcile_data import DAYS, START, saved_page_files, true_traffic, what_we_logged
from tests.support.slack_server import SlackServer
from tests.support.worker import WorkerProcess, wait_until, write_config

pytestmark = pytest.mark.integration
SINCE, UNTIL = START.date().isoformat(), (START.date() + timedelta(days=DAYS)).isoformat()


def alerting_config(slack: SlackServer) -> str:
    return f"""
[alerts]
slack_webhook_base = "{slack.base_url}"
group_wait = "1s"
[alerts.channels]
finops-slack = "slack://T000/B000/XXXXXXXX"
[reconcile.openai.mapping]
proj_search = {{ team = "search" }}
proj_support = {{ team = "support" }}
[reconcile.alerts]
enabled = true
percent = "50"
amount = "0.01"
channels = ["finops-slack"]
[leadership]
lease_ttl_s = 3
renew_every_s = 0.5
"""


def test_alert_send_beside_a_running_worker_delivers_each_alert_once(
    tmp_path: Path,
    broker: TansuBroker,
    clickhouse_server: ChdbHttpServer,
    slack: SlackServer,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    client = connect(clickhouse_server.dsn, "spendstream")
    logged, _dropped = what_we_logged(true_traffic())
    fill_ledger(client, logged)
    config = write_config(
        tmp_path / "spendstream.toml",
        broker.bootstrap_servers,
        clickhouse_server.dsn,
        alerting_config(slack),
    )
    files = saved_page_files(tmp_path)
    runner = CliRunner()
    loaded = runner.invoke(reconcile_app, ["import", "-p", "openai", *files, "-c", str(config)])
    assert loaded.exit_code == 0, loaded.output

    worker = start_worker(config)
    leases = LeaseStore(connect(clickhouse_server.dsn, "spendstream"))
    wait_until(lambda: not leases.state(ALERTING_LEASE).expired(timedelta(seconds=3)), 60, "lease")
    holder = leases.state(ALERTING_LEASE).holder

    sent = runner.invoke(
        reconcile_app, ["alert", "--since", SINCE, "--until", UNTIL, "--send", "-c", str(config)]
    )
    assert sent.exit_code == 0, sent.output
    created = int(sent.output.split(" reconciliation alert(s) created")[0].split()[-1])
    assert created == DAYS * 2  # gpt-9-preview, two mapped projects a day
    assert f"{created} of {created} delivery(ies) sent by the worker holding" in sent.output
    assert leases.state(ALERTING_LEASE).holder == holder  # the command never took the lease
    time.sleep(3)  # a doubled send would land within the dispatcher's next ticks
    texts = [json.dumps(body) for body in slack.received]
    assert sum(text.count("Reconciliation 2026-11-0") for text in texts) == created
    rows = client.query(
        "SELECT status, attempts, count() FROM alert_deliveries FINAL GROUP BY 1, 2"
    ).result_rows
    assert rows == [("delivered", 1, created)]
    assert worker.process is not None and worker.process.poll() is None
