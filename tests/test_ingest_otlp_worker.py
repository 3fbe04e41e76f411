"""OTLP spans end to end: the instrumented OpenAI client's spans, written to Kafka as the
Collector's Kafka exporter writes them, reach the ledger through the real worker."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from kafka import KafkaProducer

from spendstream.embedded import TansuBroker
from tests.support.otel import OpenAIStandIn, Usage, instrumented_openai, otlp_json, otlp_proto
from tests.support.traffic import LIST_PRICES, read_dead_letters
from tests.support.worker import WorkerProcess, wait_until, write_config

pytestmark = pytest.mark.integration
OTLP_TOPIC = "otlp_spans"


def chat(client: object, model: str) -> None:
    client.chat.completions.create(  # type: ignore[attr-defined]
        model=model, messages=[{"role": "user", "content": "hello"}]
    )


def export(bootstrap: str, payloads: list[bytes]) -> None:
    """Publish like the Collector's exporter: one record per export, no key (partition 0 here,
    so the records are consumed in this order)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for payload in payloads:
        producer.send(OTLP_TOPIC, payload, partition=0)
    producer.flush()
    producer.close()


def test_spans_from_kafka_reach_the_ledger_once(
    tmp_path: Path, broker: TansuBroker, chdb_dsn: str, start_worker: Callable[..., WorkerProcess]
) -> None:
    config = write_config(
        tmp_path / "otlp.toml",
        broker.bootstrap_servers,
        chdb_dsn,
        f'[ingest.otlp]\ntopic = "{OTLP_TOPIC}"\n',
    )
    with OpenAIStandIn() as api:
        api.usages += [Usage(1_200, 300), Usage(800, 100), Usage(5_000, 40)]
        api.usages += [Usage(70, 7), Usage(300, 30)]
        chatbot = {"service.name": "chatbot", "deployment.environment.name": "prod"}
        with instrumented_openai(api.base_url, chatbot) as (client, exporter, provider):
            chat(client, "gpt-4o-mini")
            chat(client, "gpt-4o")
            chat(client, "gpt-4o-mini")
            with provider.get_tracer("app").start_as_current_span("GET /search"):
                pass  # not a GenAI span: ignored
            proto_export = otlp_proto(exporter.get_finished_spans())
            exporter.clear()
            with provider.get_tracer("app").start_as_current_span(
                "chat", attributes={"gen_ai.provider.name": "openai"}
            ):
                pass  # GenAI without a model: dead-lettered
            chat(client, "gpt-4o")
            json_export = otlp_json(exporter.get_finished_spans())
            exporter.clear()
            chat(client, "gpt-4o-mini")
            sentinel = otlp_json(exporter.get_finished_spans())

    worker = start_worker(config)
    export(broker.bootstrap_servers, [proto_export, json_export])
    worker.wait_for_ledger_count(4)

    rows = worker.query(
        "SELECT model, count(), sum(input_tokens), sum(output_tokens), sum(cost_total), "
        "any(app), any(env), any(response_model), countIf(priced) "
        "FROM ledger FINAL GROUP BY model ORDER BY model"
    ).rows
    expected_cost = {
        model: (
            tokens_in * LIST_PRICES[("openai", model)][0]
            + tokens_out * LIST_PRICES[("openai", model)][1]
        )
        / 1_000_000
        for model, tokens_in, tokens_out in (
            ("gpt-4o", 800 + 70, 100 + 7),
            ("gpt-4o-mini", 1_200 + 5_000, 300 + 40),
        )
    }
    assert [(r[0], int(r[1]), int(r[2]), int(r[3])) for r in rows] == [
        ("gpt-4o", 2, 870, 107),
        ("gpt-4o-mini", 2, 6_200, 340),
    ]
    assert {r[0]: Decimal(str(r[4])) for r in rows} == expected_cost
    assert {(r[5], r[6]) for r in rows} == {("chatbot", "prod")}
    assert all(str(r[7]).startswith(r[0]) and int(r[8]) == 2 for r in rows)

    # Re-exporting the same spans adds nothing; the sentinel behind them proves they were read.
    export(broker.bootstrap_servers, [proto_export, json_export, sentinel])
    worker.wait_for_ledger_count(5)
    wait_until(
        lambda: int(worker.scalar("SELECT max(kafka_offset) FROM ledger FINAL")) == 4,
        60,
        "the sentinel export consumed",
    )
    assert int(worker.scalar("SELECT count() FROM ledger FINAL")) == 5
    assert int(worker.scalar("SELECT sum(input_tokens) FROM ledger FINAL")) == 870 + 6_200 + 300
    wait_until(  # the day rollup is refreshed last
        lambda: int(worker.scalar("SELECT sum(input_tokens) FROM rollup_day FINAL")) == 7_370,
        60,
        "the day rollup to match the ledger",
    )

    letters = sorted(read_dead_letters(broker.bootstrap_servers), key=lambda x: x.source_offset)
    assert [letter.source_offset for letter in letters] == [1, 3]  # both exports of the span
    assert all("gen_ai.request.model" in letter.reason for letter in letters)
    assert worker.metric("spendstream_otlp_spans_in") == 4 + 2 + 4 + 2 + 1
