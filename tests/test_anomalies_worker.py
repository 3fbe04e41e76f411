"""The worker starts with [[anomalies]] rules (validated, the detector wired into alerting) and
serves the inbox API (one real worker; the rest is tested in-process)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from spendstream.embedded import TansuBroker
from tests.support.worker import WorkerProcess, write_config

pytestmark = pytest.mark.integration

RULES = """
[alerts.channels]
oncall = "json://127.0.0.1:9/hook"

[[anomalies]]
name = "team-spend"
group_by = ["team"]
channels = ["oncall"]
"""


def test_a_worker_with_anomaly_rules_serves_the_inbox(
    tmp_path: Path,
    broker: TansuBroker,
    chdb_dsn: str,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    config = write_config(tmp_path / "rules.toml", broker.bootstrap_servers, chdb_dsn, RULES)
    worker = start_worker(config)
    body = worker.api().get("/anomalies", {"since": "7d"})
    assert body["anomalies"] == [] and body["since"]
