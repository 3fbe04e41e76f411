"""docker-compose.yml cannot run here (no Docker engine); validate its shape and wiring instead."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from spendstream.config import load_settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_kafka_kraft_clickhouse_and_worker(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"kafka", "clickhouse", "worker", "worker-2", "grafana"}
    # Two workers, one consumer group and one ClickHouse: the same settings, another port.
    second = services["worker-2"]
    assert second["environment"] == services["worker"]["environment"]
    assert second["ports"] != services["worker"]["ports"]
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


# --- least-privilege ClickHouse users (#11 item 8) -------------------------------------------

DEPLOY = ROOT / "deploy" / "clickhouse"
ENV_EXAMPLE = dict(
    line.split("=", 1)
    for line in (ROOT / ".env.example").read_text().splitlines()
    if line and not line.startswith("#")
)
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z_]+):\?[^}]*\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """What docker compose does with ``${NAME:?message}`` (a required variable)."""
    return INTERPOLATION.sub(lambda m: env[m["name"]], value)


def test_passwords_come_from_the_environment_never_from_the_file(compose: dict) -> None:
    services = compose["services"]
    for name, service in services.items():
        for key, value in service.get("environment", {}).items():
            if "PASSWORD" in key or key.endswith("__DSN"):
                assert INTERPOLATION.search(str(value)), f"{name}.{key} holds a literal secret"
    assert services["clickhouse"]["environment"]["CLICKHOUSE_USER"] == "spendstream_admin"
    assert set(ENV_EXAMPLE) == {
        "CLICKHOUSE_ADMIN_PASSWORD",
        "SPENDSTREAM_WRITER_PASSWORD",
        "SPENDSTREAM_READER_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
    }


def test_worker_connects_as_the_writer_not_the_admin(
    compose: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in compose["services"]["worker"]["environment"].items():
        monkeypatch.setenv(key, interpolate(str(value), ENV_EXAMPLE))
    monkeypatch.delenv("SPENDSTREAM_CONFIG", raising=False)
    dsn = urlsplit(load_settings(None).clickhouse.dsn)
    assert (dsn.username, dsn.password) == (
        "spendstream_writer",
        ENV_EXAMPLE["SPENDSTREAM_WRITER_PASSWORD"],
    )
    assert dsn.hostname == "clickhouse"


def test_clickhouse_mounts_the_user_init_files(compose: dict) -> None:
    volumes = compose["services"]["clickhouse"]["volumes"]
    assert "./deploy/clickhouse/initdb:/docker-entrypoint-initdb.d:ro" in volumes
    assert "./deploy/clickhouse/users.sql:/spendstream/users.sql:ro" in volumes
    script = DEPLOY / "initdb" / "10-spendstream-users.sh"
    assert script.stat().st_mode & stat.S_IXUSR
    assert (DEPLOY / "users.sql").exists()


def render_users_sql(tmp_path: Path, writer: str, reader: str) -> str:
    """Run the real init script with a stand-in ``clickhouse`` binary that keeps its stdin."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "clickhouse").write_text(f'#!/bin/sh\ncat > "{tmp_path / "rendered.sql"}"\n')
    (fake / "clickhouse").chmod(0o755)
    env = {
        "PATH": f"{fake}:{os.environ['PATH']}",
        "SPENDSTREAM_USERS_SQL": str(DEPLOY / "users.sql"),
        "SPENDSTREAM_WRITER_PASSWORD": writer,
        "SPENDSTREAM_READER_PASSWORD": reader,
        "CLICKHOUSE_USER": "spendstream_admin",
        "CLICKHOUSE_PASSWORD": "admin",
    }
    script = DEPLOY / "initdb" / "10-spendstream-users.sh"
    subprocess.run(["bash", str(script)], env=env, check=True, timeout=30)
    return (tmp_path / "rendered.sql").read_text()


def statements(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [" ".join(part.split()) for part in body.split(";") if part.strip()]


def test_users_sql_grants_least_privilege_and_parses(tmp_path: Path) -> None:
    writer, reader = "w'x\\y&z|$HOME", "reader-pass"
    rendered = render_users_sql(tmp_path, writer, reader)
    sql = statements(rendered)
    import chdb  # the real ClickHouse parser: every statement must parse

    for statement in sql:
        chdb.query(f"SELECT formatQuery({quote(statement)})", "TSV")
    # The writer's password arrives exactly, however it is spelled.
    literal = re.search(
        r"spendstream_writer\s+IDENTIFIED WITH sha256_password BY ('.*?[^\\]')", rendered
    )
    assert literal is not None
    shown = str(chdb.query(f"SELECT hex({literal.group(1)})", "TSV")).strip()
    assert shown == writer.encode().hex().upper()
    grants = {
        user: [s for s in sql if s.startswith("GRANT") and s.endswith(f"TO {user}")]
        for user in ("spendstream_writer", "spendstream_reader")
    }
    assert grants["spendstream_reader"] == ["GRANT SELECT ON spendstream.* TO spendstream_reader"]
    (writer_grant,) = grants["spendstream_writer"]
    rights = writer_grant.removeprefix("GRANT ").split(" ON ")[0].split(", ")
    assert set(rights) <= {
        "CREATE DATABASE", "CREATE TABLE", "CREATE VIEW", "ALTER TABLE", "ALTER VIEW",
        "INSERT", "SELECT",
    }  # fmt: skip
    assert " ON spendstream.* TO " in writer_grant
    assert not any(re.search(r"\bALL\b|\bDROP\b|ACCESS|SYSTEM|\*\.\*", s) for s in sql)
    profile = next(s for s in sql if s.startswith("CREATE SETTINGS PROFILE"))
    assert "readonly = 1 CONST" in profile
    reader_user = next(
        s for s in sql if s.startswith("CREATE USER IF NOT EXISTS spendstream_reader")
    )
    assert "SETTINGS PROFILE 'spendstream_readonly'" in reader_user


def quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
