"""HTTP ingest over real HTTP (uvicorn on loopback) into a real Tansu broker and worker."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from spendstream.auth.roles import Principal, Role
from spendstream.config import HttpIngestSettings
from spendstream.embedded import TansuBroker, free_port
from spendstream.ingest.http import ingest_router
from spendstream.ingest.publisher import KafkaEventPublisher
from spendstream.producers.options import RecorderOptions
from tests.support.cli import spendstream
from tests.support.http_app import ServedApp, TokenAuthenticator
from tests.support.tcp_proxy import ProxyProcess
from tests.support.traffic import LIST_PRICES, TEAMS
from tests.support.worker import WorkerProcess, wait_until, write_config

pytestmark = pytest.mark.integration

TOKENS = {
    "svc": Principal("billing-service", Role.SERVICE),
    "svc-search": Principal("search-service", Role.SERVICE, frozenset({"search"})),
    "viewer": Principal("dashboard", Role.VIEWER),
}
SETTINGS = HttpIngestSettings(
    max_body_bytes=256 * 1024, max_events=1_000, ack_timeout_s=3, retry_after_s=1
)
MODELS = list(LIST_PRICES)
# Malformed items (JSON body / NDJSON line) and a word their refusal reason must contain.
MALFORMED: list[tuple[Any, str, str]] = [
    ({"model": "gpt-4o", "input_tokens": 5}, '{"model": "gpt-4o"}', "provider"),
    (
        {"provider": "openai", "model": "gpt-4o", "input_tokens": -1},
        '{"provider": "openai", "model": "gpt-4o", "input_tokens": -1}',
        "input_tokens",
    ),
    (42, "[1, 2]", "JSON object"),
    (
        {"provider": "openai", "model": "gpt-4o", "colour": "red"},
        "{not json",
        "",
    ),
    (
        {"provider": "openai", "model": "gpt-4o", "input_tokens": 1, "cache_read_tokens": 9},
        '{"provider": "openai", "model": "gpt-4o", "input_tokens": 1, "cache_read_tokens": 9}',
        "cache_read_tokens",
    ),
]


def valid_event(number: int, prefix: str = "http") -> dict[str, Any]:
    provider, model = MODELS[number % len(MODELS)]
    return {
        "event_id": f"{prefix}-{number}",
        "provider": provider,
        "model": model,
        "input_tokens": 100 + number % 997,
        "output_tokens": number % 53,
        "tags": {"team": TEAMS[number % len(TEAMS)], "app": "http-test"},
    }


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[TansuBroker, ProxyProcess]]:
    proxy_port = free_port()
    with TansuBroker(log_path=tmp_path / "tansu.log", advertised_port=proxy_port) as broker:
        proxy = ProxyProcess(broker.port, port=proxy_port).start()
        yield broker, proxy
        proxy.cut()


def post(client: httpx.Client, token: str, body: bytes, kind: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": kind}
    return client.post("/api/v1/events", content=body, headers=headers, timeout=30)


def batch(start: int) -> tuple[bytes, bytes, set[int], dict[int, str]]:
    """Items ``start..start+99``: a JSON array, the same as NDJSON, valid positions, and the
    malformed positions with the word their reason must contain."""
    as_json: list[Any] = []
    as_lines: list[str] = []
    valid: set[int] = set()
    bad: dict[int, str] = {}
    for position in range(100):
        number = start + position
        if number % 7 == 3:
            item, line, word = MALFORMED[number % len(MALFORMED)]
            as_json.append(item)
            as_lines.append(line)
            bad[position] = word
        else:
            as_json.append(valid_event(number))
            as_lines.append(json.dumps(valid_event(number)))
            valid.add(position)
    return json.dumps(as_json).encode(), "\n".join(as_lines).encode(), valid, bad


def test_10k_events_in_batches_all_accounted_for_then_broker_down(
    tmp_path: Path,
    proxied: tuple[TansuBroker, ProxyProcess],
    chdb_dsn: str,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    _, proxy = proxied
    worker = start_worker(write_config(tmp_path / "w.toml", proxy.address, chdb_dsn))
    publisher = KafkaEventPublisher(
        RecorderOptions(bootstrap_servers=proxy.address),
        ack_timeout_s=SETTINGS.ack_timeout_s,
        retry_after_s=SETTINGS.retry_after_s,
    )
    router = ingest_router(publisher, SETTINGS)
    with (
        ServedApp(TokenAuthenticator(TOKENS), router) as served,
        httpx.Client(base_url=served.url) as client,
    ):
        refusals_and_contract(client)

        def send(start: int) -> tuple[int, int]:
            as_json, as_lines, valid, bad = batch(start)
            ndjson = (start // 100) % 2 == 1
            body, kind = (
                (as_lines, "application/x-ndjson") if ndjson else (as_json, "application/json")
            )
            answer = post(client, "svc", body, kind)
            assert answer.status_code == 200, answer.text
            content = answer.json()
            assert {event["index"] for event in content["events"]} == valid
            assert {e["event_id"] for e in content["events"]} == {
                f"http-{start + index}" for index in valid
            }
            assert {error["index"] for error in content["errors"]} == set(bad)
            for error in content["errors"]:
                assert bad[error["index"]] in error["reason"] and error["reason"]
            return content["accepted"], content["refused"]

        with ThreadPoolExecutor(4) as pool:
            counts = list(pool.map(send, range(0, 10_000, 100)))
        accepted = sum(count[0] for count in counts)
        assert accepted + sum(count[1] for count in counts) == 10_000
        expected = [valid_event(n) for n in range(10_000) if n % 7 != 3]
        assert accepted == len(expected)
        worker.wait_for_ledger_count(len(expected) + 1)  # + the scoped event below
        tokens = int(
            worker.scalar("SELECT sum(input_tokens) FROM ledger FINAL WHERE app = 'http-test'")
        )
        assert tokens == sum(event["input_tokens"] for event in expected)

        broker_down_then_back(client, proxy, worker, len(expected) + 1)
    publisher.close()


def refusals_and_contract(client: httpx.Client) -> None:
    event = json.dumps(valid_event(0, "edge")).encode()
    assert post(client, "nope", event, "application/json").status_code == 401
    assert post(client, "viewer", event, "application/json").status_code == 403
    unsupported = post(client, "svc", event, "text/plain")
    assert unsupported.status_code == 415 and "application/x-ndjson" in unsupported.json()["detail"]
    assert post(client, "svc", b"[{", "application/json").status_code == 400
    huge = post(client, "svc", b"[" + b" " * SETTINGS.max_body_bytes + b"]", "application/json")
    assert huge.status_code == 413 and "max_body_bytes" in huge.json()["detail"]
    many = post(client, "svc", json.dumps([{}] * 1_001).encode(), "application/json")
    assert many.status_code == 413 and "max_events" in many.json()["detail"]
    none_valid = post(client, "svc", b'[{"model": "x"}]', "application/json")
    assert none_valid.status_code == 422 and none_valid.json()["errors"][0]["index"] == 0
    # A token limited to team "search": other teams are refused, a missing team is filled in.
    other_team = {**valid_event(1, "edge"), "tags": {"team": "growth"}}
    no_team = {**valid_event(2, "edge"), "tags": {}}
    scoped = post(
        client, "svc-search", json.dumps([other_team, no_team]).encode(), "application/json"
    )
    assert scoped.status_code == 200
    assert "not a team of token 'search-service'" in scoped.json()["errors"][0]["reason"]
    assert [e["event_id"] for e in scoped.json()["events"]] == ["edge-2"]


def send_cli_exits_unavailable(config: Path, spool: Path) -> None:
    """``spendstream send`` while the broker is cut: exit 3 (docs/cli.md), nothing lost (the
    event waits in its own spool, never sent in this test)."""
    source = config.with_name("cli-events.jsonl")
    source.write_text(json.dumps(valid_event(0, "cli-down")) + "\n")
    sent = spendstream(
        "send", str(source), "--flush-timeout", "2", "--config", str(config),
        cwd=config.parent, env={"SPENDSTREAM_PRODUCER__SPOOL_DIR": str(spool)},
    )  # fmt: skip
    assert sent.returncode == 3, sent.stderr
    assert "accepted 1, rejected 0" in sent.stdout and "not all delivered yet" in sent.stderr


def broker_down_then_back(
    client: httpx.Client, proxy: ProxyProcess, worker: WorkerProcess, in_ledger: int
) -> None:
    """Broker unreachable: 503 + Retry-After, and nothing is acknowledged that is not stored;
    once it is back, re-sending what was not stored completes the set exactly."""
    events = [valid_event(n, "down") for n in range(50)]
    proxy.cut()
    answer = post(client, "svc", json.dumps(events).encode(), "application/json")
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) >= 1
    acknowledged = {event["event_id"] for event in answer.json()["events"]}
    pending = {error["index"] for error in answer.json()["errors"]}
    assert len(acknowledged) + len(pending) == 50
    started = time.monotonic()
    fast = post(client, "svc", json.dumps(events[:1]).encode(), "application/json")
    assert fast.status_code == 503  # answered without waiting for another timeout
    assert time.monotonic() - started < SETTINGS.ack_timeout_s
    # Reads do not need the broker: the worker's API still answers them.
    assert int(worker.scalar("SELECT count() FROM ledger FINAL")) >= in_ledger
    send_cli_exits_unavailable(worker.config, worker.config.with_name("cli-spool"))
    proxy.restore()
    deadline = time.monotonic() + 90
    while pending and time.monotonic() < deadline:
        resend = [events[index] for index in sorted(pending)]
        retry = post(client, "svc", json.dumps(resend).encode(), "application/json")
        stored = {event["index"] for event in retry.json()["events"]}
        acknowledged |= {resend[index]["event_id"] for index in stored}
        pending = {sorted(pending)[error["index"]] for error in retry.json()["errors"]}
        if pending:
            time.sleep(float(retry.headers.get("Retry-After", "1")))
    assert not pending and len(acknowledged) == 50
    worker.wait_for_ledger_count(in_ledger + 50)
    wait_until(
        lambda: (
            int(worker.scalar("SELECT count() FROM ledger FINAL WHERE event_id LIKE 'down-%'"))
            == 50
        ),
        60,
        "every acknowledged event in the ledger",
    )
    assert int(worker.scalar("SELECT count() FROM ledger FINAL")) == in_ledger + 50


def test_more_events_awaiting_the_broker_than_allowed_get_429() -> None:
    # Refused before anything is sent: no broker is needed (nothing listens on port 1).
    publisher = KafkaEventPublisher(
        RecorderOptions(bootstrap_servers="127.0.0.1:1"), max_pending=10, retry_after_s=3
    )
    router = ingest_router(publisher, SETTINGS)
    with (
        ServedApp(TokenAuthenticator(TOKENS), router) as served,
        httpx.Client(base_url=served.url) as client,
    ):
        body = "\n".join(json.dumps(valid_event(n, "busy")) for n in range(11)).encode()
        answer = post(client, "svc", body, "application/x-ndjson")
    assert answer.status_code == 429, answer.text
    assert answer.headers["Retry-After"] == "3"
    assert "retry" in answer.json()["detail"]
