"""docker-compose.yml cannot run here (no Docker engine); validate its shape and wiring instead."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from spendstream.config import load_settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_kafka_kraft_clickhouse_and_worker(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"kafka", "clickhouse", "worker", "grafana"}
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZK
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    worker = services["worker"]
    assert worker["build"] == "."
    assert (ROOT / "Dockerfile").exists()
    assert set(worker["depends_on"]) == {"kafka", "clickhouse"}
    for service in services.values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{port} would be exposed beyond loopback"


def test_worker_environment_is_valid_spendstream_config(
    compose: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = compose["services"]["worker"]["environment"]
    for key, value in environment.items():
        assert key.startswith("SPENDSTREAM_")
        monkeypatch.setenv(key, str(value))
    monkeypatch.delenv("SPENDSTREAM_CONFIG", raising=False)
    settings = load_settings(None)
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.clickhouse.dsn.startswith("http://")
    assert "@clickhouse:8123" in settings.clickhouse.dsn
    assert settings.worker.web_port == 6066
