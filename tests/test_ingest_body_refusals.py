"""What the worker's API answers a body it will not read names what to change (real broker,
worker and HTTP): the setting whose limit a 413 applied (``ingest.http.max_body_bytes`` on the
ingest route, ``api.max_body_bytes`` elsewhere), and a compressed body is a 415 saying to send it
uncompressed, not one "not valid JSON" per line. Session 13's hostile report, item 9 (a) (b)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.worker import WorkerProcess, write_config

pytestmark = pytest.mark.integration

API_LIMIT, INGEST_LIMIT = 4096, 16384


def event(number: int) -> dict[str, Any]:
    return {
        "event_id": f"body-{number}",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 10,
        "output_tokens": 1,
        "tags": {"team": "search"},
    }


def padded(size: int) -> bytes:
    """A valid batch of one event, ``size`` bytes long (JSON whitespace)."""
    body = json.dumps([event(1)]).encode()
    return body[:-1] + b" " * (size - len(body)) + b"]"


def test_a_refused_body_names_the_setting_or_the_encoding_to_change(
    tmp_path: Path, broker: Any, chdb_dsn: str, start_worker: Callable[..., WorkerProcess]
) -> None:
    extra = f"[api]\nmax_body_bytes = {API_LIMIT}\n[ingest.http]\nmax_body_bytes = {INGEST_LIMIT}\n"
    config = write_config(tmp_path / "body.toml", broker.bootstrap_servers, chdb_dsn, extra)
    worker = start_worker(config)
    headers = {"Authorization": f"Bearer {worker.admin_token}"}
    json_type = {**headers, "Content-Type": "application/json"}
    with httpx.Client(base_url=worker.url, timeout=30) as client:
        # Over the API's limit but within ingest's: the ingest route takes it.
        fits = client.post("/api/v1/events", content=padded(INGEST_LIMIT - 100), headers=json_type)
        assert fits.status_code == 200, fits.text
        over = client.post("/api/v1/events", content=padded(INGEST_LIMIT + 100), headers=json_type)
        assert over.status_code == 413
        assert "ingest.http.max_body_bytes" in over.json()["detail"]
        assert str(INGEST_LIMIT) in over.json()["detail"]
        other = client.post(
            "/api/v1/sql", content=json.dumps({"sql": " " * API_LIMIT}), headers=json_type
        )
        assert other.status_code == 413 and "(api.max_body_bytes)" in other.json()["detail"]

        zipped = gzip.compress(json.dumps([event(2)]).encode())
        for media in ("application/json", "application/x-ndjson"):
            compressed = {**headers, "Content-Type": media, "Content-Encoding": "gzip"}
            answer = client.post("/api/v1/events", content=zipped, headers=compressed)
            assert answer.status_code == 415, answer.text
            detail = answer.json()["detail"]
            assert "gzip" in detail and "uncompressed" in detail
        plain = {**headers, "Content-Type": "application/json", "Content-Encoding": "identity"}
        assert client.post("/api/v1/events", json=[event(3)], headers=plain).status_code == 200
