"""``reconcile import`` from saved pages (twice), its errors, and the ``[reconcile]`` config."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client
from typer.testing import CliRunner

from spendstream.cli.reconcile import reconcile_app
from spendstream.config import ConfigError, load_settings
from spendstream.events import UsageEvent
from spendstream.pricing import default_pricer
from spendstream.reconcile.ledger_side import AccountMap, ledger_cells
from spendstream.sinks.access import ClientReader
from tests.support.ledger_data import fill_ledger
from tests.support.reconcile_data import DAYS, saved_page_files

pytestmark = pytest.mark.integration


def test_import_saved_pages_twice_and_errors(chdb_path: Path, tmp_path: Path) -> None:
    config = tmp_path / "spendstream.toml"
    config.write_text(f'[clickhouse]\ndsn = "chdb://{chdb_path}"\n[log]\nlevel = "warning"\n')
    files = saved_page_files(tmp_path)
    runner = CliRunner()
    first = runner.invoke(reconcile_app, ["import", "-p", "openai", *files, "-c", str(config)])
    assert first.exit_code == 0, first.output
    assert f"{DAYS * 2} new day(s), 0 replaced, 0 unchanged" in first.output
    again = runner.invoke(reconcile_app, ["import", "-p", "openai", *files, "-c", str(config)])
    assert f"0 new day(s), 0 replaced, {DAYS * 2} unchanged; 0 line(s)" in again.output

    status = runner.invoke(reconcile_app, ["status", "-f", "json", "-c", str(config)])
    loaded = [json.loads(line) for line in status.output.splitlines()]
    assert [(r["provider"], r["kind"], r["days"]) for r in loaded] == [
        ("openai", "cost", DAYS),
        ("openai", "usage", DAYS),
    ]
    assert Decimal(loaded[0]["amount_usd"]) > 0 and int(loaded[1]["tokens"]) > 0

    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [')
    bad = runner.invoke(reconcile_app, ["import", "-p", "openai", str(broken), "-c", str(config)])
    assert bad.exit_code == 2 and "broken.json" in bad.output
    wrong = runner.invoke(reconcile_app, ["import", "-p", "bedrock", files[0], "-c", str(config)])
    assert wrong.exit_code == 2 and "FOCUS" in wrong.output


def test_reconcile_config_is_typed_and_keeps_the_key_secret(tmp_path: Path) -> None:
    path = tmp_path / "spendstream.toml"
    path.write_text(
        '[reconcile.openai]\nadmin_key = "sk-admin-TOPSECRET"\n'
        '[reconcile.openai.mapping]\nproj_1 = { team = "search" }\n'
    )
    settings = load_settings(path)
    assert settings.reconcile.openai.mapping == {"proj_1": {"team": "search"}}
    assert "TOPSECRET" not in repr(settings) and "TOPSECRET" not in str(settings.reconcile)
    assert settings.reconcile.provider("openai").admin_key is not None
    path.write_text('[reconcile.openai]\nadminkey = "x"\n[reconcile.alerts]\npercent = "many"\n')
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    message = str(error.value)
    assert "reconcile.openai.adminkey" in message and "unknown key" in message
    assert "reconcile.alerts.percent" in message and str(path) in message


def test_mapped_tag_values_are_inert_in_sql(ledger_client: Client) -> None:
    moment = datetime(2026, 11, 2, 12, tzinfo=UTC)
    tricky = "o'brien') OR 1=1 --"
    fill_ledger(
        ledger_client,
        [
            UsageEvent(event_time=moment, provider="openai", model="gpt-4o", input_tokens=10,
                       tags={"team": tricky}),
            UsageEvent(event_time=moment, provider="openai", model="gpt-4o", input_tokens=7,
                       tags={"team": "other"}),
        ],
    )  # fmt: skip
    cells = ledger_cells(
        ClientReader(ledger_client),
        default_pricer(),
        {"openai": AccountMap({"proj_x": {"team": tricky}})},
        moment - timedelta(hours=1),
        moment + timedelta(hours=1),
    )
    tokens = {key[2]: cell.tokens["input"] for key, cell in cells.items()}
    assert tokens == {"proj_x": 10, "": 7}


def test_alert_command_checks_its_rule_and_channels(chdb_path: Path, tmp_path: Path) -> None:
    config = tmp_path / "spendstream.toml"
    base = f'[clickhouse]\ndsn = "chdb://{chdb_path}"\n[log]\nlevel = "warning"\n'
    config.write_text(base)
    runner = CliRunner()
    off = runner.invoke(reconcile_app, ["alert", "-c", str(config)])
    assert off.exit_code == 0 and "enabled = true" in off.output
    config.write_text(base + '[reconcile.alerts]\nenabled = true\nchannels = ["nowhere"]\n')
    missing = runner.invoke(reconcile_app, ["alert", "-c", str(config)])
    assert missing.exit_code == 2 and "nowhere" in missing.output
    assert "[alerts.channels]" in missing.output
