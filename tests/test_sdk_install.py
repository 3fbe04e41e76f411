"""The SDK on an SDK-only install (issue 24): ``pip install spendstream`` without extras must run
every entry point (record, admit, guard, outcome, tags, the extractors, and the LiteLLM callback
where LiteLLM is installed). Each test builds a fresh virtualenv holding only the SDK and its
declared core dependencies (tests/support/sdk_env.py) and runs tests/support/sdk_probe.py in it
against a real Tansu broker."""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from spendstream.embedded import TansuBroker
from spendstream.events import OutcomeEvent, UsageEvent, parse_event, parse_outcome
from tests.support.quota_data import decision, snapshot
from tests.support.sdk_env import clean_env, sdk_venv
from tests.support.traffic import USAGE_TOPIC

pytestmark = pytest.mark.integration

PROBE = Path(__file__).parent / "support" / "sdk_probe.py"
DECISIONS_TOPIC = "spendstream.quota.decisions.v1"
OUTCOME_TOPIC = "spendstream.outcomes.v1"


def probe(python: Path, broker: TansuBroker, spool: Path, *mode: str) -> dict[str, Any]:
    done = subprocess.run(
        [str(python), str(PROBE), broker.bootstrap_servers, str(spool), *mode],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def read(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=3_000
    )
    lines = [line for record in consumer for line in record.value.split(b"\n") if line.strip()]
    consumer.close()
    assert len(lines) == expected, lines
    return lines


def test_every_sdk_entry_point_runs_without_the_worker_extra(
    tmp_path: Path, broker: TansuBroker
) -> None:
    python = sdk_venv(tmp_path / "sdk")
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    quota = snapshot(decision("user=bob", "1.2", True), decision("user=amy", "0.5", False))
    producer.send(
        DECISIONS_TOPIC, quota.model_dump_json().encode(), partition=0
    )  # the feed reads 0
    producer.flush()
    producer.close()

    out = probe(python, broker, tmp_path / "spool")

    assert out["worker_modules_present"] == []  # the environment really is SDK-only
    assert out["openai_usage"]["input_tokens"] == 120  # cached tokens are part of the input
    assert out["openai_usage"]["cache_read_tokens"] == 20
    assert out["anthropic_usage"]["cache_read_tokens"] == 7
    assert len(out["prompt_hash"]) > 8
    assert out["bob"] == {"allowed": False, "quota": "user-daily", "key": "user=bob"}
    assert out["amy"] == {"allowed": True, "quota": "user-daily"}
    assert out["guard"] == "refused by user-daily"
    assert out["flushed"] is True
    events = sorted(
        (parse_event(line) for line in read(broker.bootstrap_servers, USAGE_TOPIC, 2)),
        key=lambda event: event.provider,
    )
    anthropic, openai = events
    assert openai.event_id == out["recorded"] and anthropic.event_id == out["recorded_anthropic"]
    assert openai.tags == {"app": "sdk", "team": "support", "user": "bob"}
    assert (openai.input_tokens, openai.cache_read_tokens, openai.output_tokens) == (120, 20, 30)
    assert isinstance(anthropic, UsageEvent) and anthropic.tags == {"app": "sdk", "team": "x"}
    [outcome] = [parse_outcome(line) for line in read(broker.bootstrap_servers, OUTCOME_TOPIC, 1)]
    assert isinstance(outcome, OutcomeEvent) and outcome.event_id == out["outcome"]
    assert outcome.value == Decimal("2.5") and outcome.tags["team"] == "support"


def test_the_litellm_callback_runs_on_the_sdk_with_litellm_alone(
    tmp_path: Path, broker: TansuBroker
) -> None:
    python = sdk_venv(tmp_path / "sdk-litellm", extra_requirements=["litellm"])
    out = probe(python, broker, tmp_path / "spool", "litellm")
    assert out == {"litellm_recorded": 1, "flushed": True}
    [event] = [parse_event(line) for line in read(broker.bootstrap_servers, USAGE_TOPIC, 1)]
    assert (event.provider, event.model, event.input_tokens) == ("openai", "gpt-4o-mini", 40)
    assert event.tags["team"] == "search"
