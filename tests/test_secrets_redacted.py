"""Secrets stay secret (#11 item 6): a full worker with a password DSN and secret channel URLs
writes no secret substring in any log line, error or help text.

ClickHouse is chDB over HTTP behind a proxy that demands the DSN's user and password (chDB
itself has only the password-less default user), so the password is really used.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spendstream.config import ClickHouseSettings, Settings, redact_text, redact_url
from spendstream.embedded import TansuBroker
from spendstream.events import UsageEvent
from tests.support.auth_proxy import AuthProxy
from tests.support.chdb_http import ChdbHttpServer
from tests.support.cli import spendstream
from tests.support.slack_server import SlackServer
from tests.support.worker import WorkerProcess, wait_until, write_config

DB_PASSWORD = "Pw-9f3Kq7!zr"
SLACK_TOKENS = ("T0SECRETA1B2", "B0SECRETC3D4", "xoxbSecretWebhookToken5566")
MAIL_PASSWORD = "mail-pass-77Qx"


def secrets() -> list[str]:
    return [DB_PASSWORD, MAIL_PASSWORD, *SLACK_TOKENS]


def test_redaction_helpers() -> None:
    assert redact_url(f"http://writer:{DB_PASSWORD}@ch:8123/db") == "http://writer:***@ch:8123/db"
    assert (
        redact_url("http://ch:8123?password=abc123&user=x") == "http://ch:8123?password=***&user=x"
    )
    assert redact_url("slack://" + "/".join(SLACK_TOKENS)) == "slack://***"
    assert redact_url("chdb://./data/clickhouse") == "chdb://./data/clickhouse"
    settings = Settings(
        clickhouse=ClickHouseSettings(dsn=f"https://u:{DB_PASSWORD}@ch:8443"),
        alerts={"channels": {"s": "slack://" + "/".join(SLACK_TOKENS)}},
    )
    assert DB_PASSWORD not in repr(settings) and SLACK_TOKENS[2] not in repr(settings)
    line = f"failed slack://{'/'.join(SLACK_TOKENS)} and {SLACK_TOKENS[2]} via {DB_PASSWORD}"
    shown = redact_text(line, settings.secret_values())
    assert not any(secret in shown for secret in secrets())
    assert redact_text("https://a:b-c@host/x") == "https://a:***@host/x"


@pytest.mark.integration
@pytest.mark.heavy
def test_worker_logs_errors_and_help_carry_no_secret(
    tmp_path: Path, broker: TansuBroker, slack: SlackServer
) -> None:
    with (
        ChdbHttpServer(tmp_path / "ch") as clickhouse,
        AuthProxy(clickhouse.port, "writer", DB_PASSWORD) as proxy,
    ):
        slack_url = "slack://" + "/".join(SLACK_TOKENS)
        # A mail channel whose server refuses: the failure is logged (with Apprise's words).
        mail_url = (
            f"mailto://alerts:{MAIL_PASSWORD}@127.0.0.1:1?smtp=127.0.0.1"
            "&from=alerts@example.com&to=a@example.com&mode=insecure"
        )
        budgets = f"""
[alerts]
slack_webhook_base = "{slack.base_url}"
group_wait = "0s"
evaluate_every = "1s"
[alerts.channels]
oncall = "{slack_url}"
mail = "{mail_url}"
[alerts.delivery]
retry_initial = "1s"

[[budgets]]
name = "tiny"
limit = "0.000001"
thresholds = [100]
forecast = false
channels = ["oncall", "mail"]
"""
        config = write_config(
            tmp_path / "w.toml", broker.bootstrap_servers, proxy.dsn(), extra=budgets
        )
        log_path = tmp_path / "worker.log"
        worker = WorkerProcess(config, log_path).start(timeout_s=120)
        try:
            events = tmp_path / "events.jsonl"
            events.write_text(
                UsageEvent(provider="openai", model="gpt-4o", input_tokens=1000).model_dump_json()
                + "\n"
            )
            sent = spendstream("send", str(events), "--config", str(config), cwd=tmp_path)
            assert sent.returncode == 0, sent.stderr
            worker.wait_for_ledger_count(1)
            wait_until(lambda: len(slack.received) >= 1, 60, "slack alert delivered")
            wait_until(
                lambda: "alert delivery failed" in log_path.read_text(), 60, "mail failure logged"
            )
        finally:
            worker.stop()
        assert proxy.accepted > 0  # the worker really authenticated with the password
        log = log_path.read_text()
        assert "worker ready" in log and "writer:***@127.0.0.1" in log
        leaked = [s for s in secrets() if s in log]
        assert not leaked, f"secrets in the worker log: {leaked}"
        assert not any(s in sent.stdout + sent.stderr for s in secrets())

        # The worker given a wrong password: its retry logs and final error name no secret.
        wrong = write_config(
            tmp_path / "wrong.toml",
            broker.bootstrap_servers,
            proxy.dsn(password="Wrong-" + DB_PASSWORD),
        )
        wrong.write_text(
            wrong.read_text().replace("[worker]\n", "[worker]\nstartup_timeout_s = 1\n")
        )
        failed = spendstream("worker", "--config", str(wrong), cwd=tmp_path)
        assert failed.returncode == 3, failed.stderr  # unavailable (docs/cli.md)
        assert "not reachable" in failed.stderr
        assert DB_PASSWORD not in failed.stdout + failed.stderr

    # A config error that quotes a channel URL shows no token.
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[alerts.channels]\nx = "nosuchscheme://{SLACK_TOKENS[2]}/{MAIL_PASSWORD}"\n')
    err = spendstream("budgets", "list", "--config", str(bad), cwd=tmp_path)
    assert err.returncode == 2 and "is not a valid Apprise URL" in err.stderr
    assert not any(s in err.stdout + err.stderr for s in secrets())

    # --help (with the secrets in the environment) prints none of them.
    env = {
        **os.environ,
        "SPENDSTREAM_CLICKHOUSE__DSN": f"http://writer:{DB_PASSWORD}@ch:8123",
        "SPENDSTREAM_ALERTS": '{"channels": {"s": "' + slack_url + '"}}',
    }
    for args in (["--help"], ["worker", "--help"], ["report", "--help"], ["budgets", "--help"]):
        shown = subprocess.run(
            [sys.executable, "-m", "spendstream", *args], capture_output=True, text=True, env=env
        )
        assert shown.returncode == 0, shown.stderr
        assert not any(s in shown.stdout + shown.stderr for s in secrets()), args
