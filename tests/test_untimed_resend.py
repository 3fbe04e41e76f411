"""A re-sent event with ``event_id`` but no ``event_time`` counts once (real broker and worker).

The defect (session 12): whoever validated such an event stamped it with its own clock, and the
ledger's sort key starts with the event's minute, so a copy arriving in a later minute (an app's
or HTTP client's retry, a redelivery in a batch composed differently) was a second row. Each copy
here travels with a different filler, so ``insert_deduplication_token`` cannot hide it. On main
both tests fail: the first counts each id twice, the second stores the copy's time, not the first's.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from tests.support.cli import spendstream
from tests.support.traffic import USAGE_TOPIC
from tests.support.worker import WorkerProcess, wait_until

pytestmark = pytest.mark.integration

TEAM = {"team": "search"}


def untimed(event_id: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 1_200,
        "output_tokens": 80,
        "tags": TEAM,
    }


def filler(event_id: str) -> dict[str, Any]:
    return {**untimed(event_id), "event_time": datetime.now().astimezone().isoformat()}


def over_kafka(
    bootstrap: str, events: list[dict[str, Any]], timestamp_ms: int | None = None
) -> None:
    """One record per event, one key (one partition, in order), the same bytes each time."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for event in events:
        value = json.dumps(event, sort_keys=True).encode()
        producer.send(USAGE_TOPIC, value, key=b"search", timestamp_ms=timestamp_ms)
    producer.flush()
    producer.close()


def over_http(worker: WorkerProcess, events: list[dict[str, Any]]) -> None:
    headers = {"Authorization": f"Bearer {worker.admin_token}"}
    answer = httpx.post(f"{worker.url}/api/v1/events", json=events, headers=headers, timeout=30)
    assert answer.status_code == 200 and answer.json()["accepted"] == len(events), answer.text


def stored(worker: WorkerProcess, ids: list[str]) -> dict[str, list[str]]:
    """``event_id -> event_time`` of every deduplicated ledger row of ``ids``."""
    quoted = ", ".join(f"'{event_id}'" for event_id in ids)
    rows = worker.query(
        f"SELECT event_id, toString(event_time) FROM ledger FINAL WHERE event_id IN ({quoted})"
        " ORDER BY event_id, event_time"
    ).rows
    found: dict[str, list[str]] = {event_id: [] for event_id in ids}
    for event_id, moment in rows:
        found[event_id].append(moment)
    return found


def wait_stored(worker: WorkerProcess, ids: list[str]) -> dict[str, list[str]]:
    wait_until(lambda: all(stored(worker, ids).values()), 60, f"{ids} in the ledger")
    return stored(worker, ids)


def over_cli(config: Path, events: list[dict[str, Any]], path: Path) -> None:
    """``spendstream send FILE``: lines with ids and no times go out without a time."""
    path.write_text("".join(json.dumps(event) + "\n" for event in events))
    sent = spendstream("send", str(path), "--config", str(config), cwd=path.parent)
    assert sent.returncode == 0, sent.stdout + sent.stderr


def send_round(
    broker: Any, worker: WorkerProcess, config: Path, tmp_path: Path, copies: list[str], n: int
) -> list[str]:
    """Each copy with a filler of round ``n`` (so no two rounds insert the same block)."""
    fillers = [f"kafka-filler-{n}", f"http-filler-{n}", f"cli-filler-{n}"]
    over_kafka(broker.bootstrap_servers, [untimed(copies[0]), filler(fillers[0])])
    over_http(worker, [untimed(copies[1]), filler(fillers[1])])
    over_cli(config, [untimed(copies[2]), filler(fillers[2])], tmp_path / f"round-{n}.jsonl")
    return fillers


def test_a_copy_re_sent_in_a_later_minute_counts_once_over_kafka_http_and_send(
    tmp_path: Path,
    broker: Any,
    worker_config: Path,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker()
    copies = ["raw-redeliver-1", "http-retry-1", "cli-send-1"]
    fillers = send_round(broker, worker, worker_config, tmp_path, copies, 1)
    first = wait_stored(worker, [*copies, *fillers])
    # Re-send once the wall clock is past the minute the first copies were stored in.
    latest = max(datetime.fromisoformat(first[i][0] + "+00:00").timestamp() for i in copies)
    time.sleep(max(0.0, (latest // 60 + 1) * 60 + 0.5 - time.time()))
    wait_stored(worker, send_round(broker, worker, worker_config, tmp_path, copies, 2))
    worker.wait_for_rollups()
    again = stored(worker, copies)
    assert again == {i: first[i] for i in copies}  # one row each, at the first copy's time
    assert int(worker.scalar("SELECT count() FROM ledger FINAL")) == 9


def test_a_copy_after_a_sigkill_gets_its_time_from_the_ledger(
    broker: Any, start_worker: Callable[..., WorkerProcess]
) -> None:
    """The first copy's record is two hours old (its time, as the worker stamps it); the copy
    comes to a new worker process, which has only the ledger to find that time in."""
    worker = start_worker()
    two_hours_ago = int((time.time() - 7_200) * 1000)
    over_kafka(
        broker.bootstrap_servers, [untimed("crash-1"), filler("crash-filler-1")], two_hours_ago
    )
    first = wait_stored(worker, ["crash-1", "crash-filler-1"])
    worker.stop(signal.SIGKILL)
    worker = start_worker(name="restarted")
    over_kafka(broker.bootstrap_servers, [untimed("crash-1"), filler("crash-filler-2")])
    wait_stored(worker, ["crash-filler-2"])
    worker.wait_for_rollups()
    assert stored(worker, ["crash-1"]) == {"crash-1": first["crash-1"]}
    assert int(worker.scalar("SELECT count() FROM ledger FINAL")) == 3
