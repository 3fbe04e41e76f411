"""Configuration errors name the file, the key, the bad value and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from spendstream.config import ConfigError, load_settings
from tests.support.cli import spendstream


def test_defaults_and_file_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPENDSTREAM_CONFIG", raising=False)
    path = tmp_path / "s.toml"
    path.write_text('[kafka]\nbootstrap_servers = "broker:9093"\n[worker]\nbatch_size = 10\n')
    settings = load_settings(path)
    assert settings.kafka.bootstrap_servers == "broker:9093"
    assert settings.worker.batch_size == 10
    assert settings.clickhouse.database == "spendstream"


def test_environment_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[clickhouse]\ndsn = "chdb:///from/file"\n')
    monkeypatch.setenv("SPENDSTREAM_CLICKHOUSE__DSN", "http://ch:8123")
    assert load_settings(path).clickhouse.dsn == "http://ch:8123"


def test_bad_value_names_file_key_value_and_expectation(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[worker]\nbatch_size = -3\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert str(path) in message
    assert "worker.batch_size = -3" in message
    assert "greater than or equal to 1" in message
    assert "SPENDSTREAM_WORKER__BATCH_SIZE" in message


def test_unknown_key_is_reported_with_fix(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('[kafka]\nbootstrap_server = "x:1"\n')
    with pytest.raises(ConfigError, match=r"kafka.bootstrap_server .*unknown key; remove it"):
        load_settings(path)


@pytest.mark.parametrize(
    ("name", "example"),
    [
        ("SPENDSTREAM_API__ALLOWED_HOSTS", """'["a", "b"]'"""),
        ("SPENDSTREAM_BUDGETS", """'[{"key": "value"}]'"""),
        ("SPENDSTREAM_API", """'{"key": "value"}'"""),
    ],
)
def test_bad_json_in_the_environment_names_the_variable(
    name: str, example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPENDSTREAM_CLICKHOUSE__DSN", "chdb://ch")  # a string, not JSON
    monkeypatch.setenv(name, "notjson")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith("invalid configuration in the environment: ")
    assert f"{name} must be JSON, e.g. {example}" in str(info.value)
    assert "SPENDSTREAM_CLICKHOUSE__DSN" not in str(info.value)


def test_toml_syntax_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[kafka\n")
    with pytest.raises(ConfigError, match=r"broken.toml: invalid TOML"):
        load_settings(broken)
    with pytest.raises(ConfigError, match=r"nope.toml: config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_worker_refuses_invalid_budgets_before_touching_storage(tmp_path: Path) -> None:
    storage = tmp_path / "clickhouse"
    path = tmp_path / "bad-budgets.toml"
    path.write_text(
        f'[clickhouse]\ndsn = "chdb://{storage}"\n'
        '[[budgets]]\nname = "search"\nlimit = "abc"\nthresholds = [50]\nchannels = []\n'
    )
    result = spendstream("worker", "--config", str(path), cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert str(path) in result.stderr
    assert "budgets[0].limit = 'abc'" in result.stderr
    assert not storage.exists()


def test_a_command_exits_2_on_bad_json_in_the_environment(tmp_path: Path) -> None:
    result = spendstream("report", cwd=tmp_path, env={"SPENDSTREAM_API__ALLOWED_HOSTS": "notjson"})
    assert result.returncode == 2, result.stderr
    assert "SPENDSTREAM_API__ALLOWED_HOSTS must be JSON" in result.stderr
    assert "a bug" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("brokers", ["", " ", "127.0.0.1", ":9092", "kafka:port", "a:1,"])
def test_a_broker_list_without_host_and_port_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, brokers: str
) -> None:
    monkeypatch.delenv("SPENDSTREAM_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no spendstream.toml found here
    monkeypatch.setenv("SPENDSTREAM_KAFKA__BOOTSTRAP_SERVERS", brokers)
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    message = str(info.value)
    assert "SPENDSTREAM_KAFKA__BOOTSTRAP_SERVERS" in message and "host:port" in message


def test_a_broker_list_is_kept_without_spaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPENDSTREAM_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPENDSTREAM_KAFKA__BOOTSTRAP_SERVERS", " k1:9092, [::1]:19092 ")
    assert load_settings(None).kafka.bootstrap_servers == "k1:9092,[::1]:19092"


def test_send_with_an_unset_broker_variable_exits_2_naming_it(tmp_path: Path) -> None:
    """The README tour's ``SPENDSTREAM_KAFKA__BOOTSTRAP_SERVERS=$B`` with ``B`` unset."""
    event = tmp_path / "event.json"
    event.write_text('{"provider": "openai", "model": "gpt-4o", "input_tokens": 1}\n')
    env = {"SPENDSTREAM_KAFKA__BOOTSTRAP_SERVERS": ""}
    result = spendstream("send", str(event), cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert "SPENDSTREAM_KAFKA__BOOTSTRAP_SERVERS" in result.stderr and "host:port" in result.stderr
