"""The CLI's quick settings read (spendstream.client_settings) agrees with the full Settings:
for every configuration it accepts, the keys it reads hold what Settings holds; every
configuration Settings refuses, it hands back to Settings (None), so the error a person sees
(file, key, fix) is the same one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from spendstream.client_settings import (
    SETTINGS_FIELDS,
    ClientSettings,
    client_settings_of,
    read_client_settings,
)
from spendstream.config import ConfigError, Settings, load_settings

SLACK = "slack://T0001/B0002/averyverysecrettoken"

# (environment, config file text or None for no file): configurations the quick read takes.
TAKEN = {
    "defaults": ({}, None),
    "an empty file": ({}, ""),
    "the DSN from the file": ({}, '[clickhouse]\ndsn = "chdb:///srv/ch"\n'),
    "a nested key in the environment, any case": (
        {"spendstream_clickhouse__dsn": "chdb:///env"},
        None,
    ),
    "mixed-case names": ({"Spendstream_Api__Token": "tok-mixed"}, None),
    "the environment beats the file, key by key": (
        {"SPENDSTREAM_CLICKHOUSE__DSN": "chdb:///from-env", "SPENDSTREAM_LOG__FORMAT": "json"},
        '[clickhouse]\ndsn = "chdb:///from-file"\ndatabase = "d"\ncluster = "c"\n'
        '[log]\nlevel = "debug"\nformat = "console"\n',
    ),
    "log.level given as the default counts as given": ({}, '[log]\nlevel = "info"\n'),
    "empty values": ({"SPENDSTREAM_LOG__LEVEL": "", "SPENDSTREAM_API__TOKEN": ""}, None),
    "a display currency, overridden": (
        {"SPENDSTREAM_CURRENCY__DISPLAY": "GBP"},
        '[currency]\ndisplay = "EUR"\n',
    ),
    "tables Settings keeps as they are, alert channels among the secrets": (
        {},
        f'[alerts.channels]\nops = "{SLACK}"\n[pricing]\nunit = "usd"\n'
        '[[budgets]]\nname = "b"\n[[quotas]]\nname = "q"\n[[anomalies]]\nname = "a"\n',
    ),
    "a DSN password among the secrets": (
        {"SPENDSTREAM_CLICKHOUSE__DSN": "http://writer:s3cretpass@ch:8123/?access_token=abcdef"},
        '[api]\ntoken = "file-token"\n',
    ),
    "variables that are not settings": (
        {"SPENDSTREAM_TOKEN": "t", "SPENDSTREAM_CONFIG_X": "x", "SPENDSTREAM_BOGUS": "1"},
        None,
    ),
}

# Configurations Settings refuses: the quick read must step aside.
REFUSED = {
    "a display currency in lower case": ({"SPENDSTREAM_CURRENCY__DISPLAY": "eur"}, None),
    "an empty display currency": ({"SPENDSTREAM_CURRENCY__DISPLAY": ""}, None),
    "a display currency with a newline": ({}, '[currency]\ndisplay = "EUR\\n"\n'),
    "an unknown log format": ({"SPENDSTREAM_LOG__FORMAT": "JSON"}, None),
    "a key in upper case in the file": ({}, '[clickhouse]\nDSN = "chdb:///x"\n'),
    "a DSN that is not text": ({}, "[clickhouse]\ndsn = 5\n"),
    "a section that is not a table": ({}, "clickhouse = 5\n"),
    "an unknown key in the environment": ({"SPENDSTREAM_CLICKHOUSE__BOGUS": "1"}, None),
    "an unknown key in the file": ({}, '[api]\ntokn = "x"\n'),
    "a bad value in a section the quick read does not read": ({}, "[worker]\nbatch_size = 0\n"),
    "budgets that are not tables": ({}, "budgets = 5\n"),
    "invalid TOML": ({}, "[clickhouse\n"),
}

# Valid configurations beyond the quick read: it steps aside, Settings reads them.
BEYOND = {
    "a section spelled in capitals": ({}, '[ClickHouse]\ndsn = "chdb:///x"\n'),
    "a whole section as JSON in the environment": (
        {"SPENDSTREAM_CLICKHOUSE": '{"dsn": "chdb:///json"}'},
        None,
    ),
    "another section": ({}, '[kafka]\nbootstrap_servers = "k:9092"\n'),
    "another key of a section read": ({}, "[api]\nmax_body_bytes = 4096\n"),
    "reconciliation (its admin keys are secrets)": ({}, '[reconcile.openai]\nadmin_key = "sk"\n'),
}


@pytest.fixture
def configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Apply (environment, file text): only these SPENDSTREAM_* variables, cwd without a
    spendstream.toml; returns the file path (None: no file)."""

    def apply(env: dict[str, str], text: str | None) -> Path | None:
        import os

        for name in [name for name in os.environ if name.upper().startswith("SPENDSTREAM_")]:
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(tmp_path)
        if text is None:
            return None
        path = tmp_path / "spendstream.toml"
        path.write_text(text)
        return path

    return apply


def same_order(view: ClientSettings) -> ClientSettings:
    """Secrets of one length come in set order: compare them sorted."""
    return dataclasses.replace(view, secrets=tuple(sorted(view.secrets)))


@pytest.mark.parametrize("case", TAKEN)
def test_what_the_quick_read_takes_equals_settings(configure, case: str) -> None:  # type: ignore[no-untyped-def]
    path = configure(*TAKEN[case])
    quick = read_client_settings(path)
    assert quick is not None, case
    assert same_order(quick) == same_order(client_settings_of(load_settings(path)))


def test_the_cases_reach_every_value_it_reads(configure) -> None:  # type: ignore[no-untyped-def]
    """The cases above are not all defaults: each field differs from the default somewhere."""
    seen = [read_client_settings(configure(*TAKEN[case])) for case in TAKEN]
    default = read_client_settings(configure({}, None))
    for field in dataclasses.fields(ClientSettings):
        values = {getattr(view, field.name) for view in seen if view is not None}
        assert values - {getattr(default, field.name)}, field.name
    secrets = read_client_settings(configure(*TAKEN["a DSN password among the secrets"]))
    assert secrets is not None and {"s3cretpass", "abcdef", "file-token"} <= set(secrets.secrets)


@pytest.mark.parametrize("case", REFUSED)
def test_what_settings_refuses_goes_to_settings(configure, case: str) -> None:  # type: ignore[no-untyped-def]
    path = configure(*REFUSED[case])
    assert read_client_settings(path) is None, case
    with pytest.raises(ConfigError):
        load_settings(path)


@pytest.mark.parametrize("case", BEYOND)
def test_what_it_does_not_read_goes_to_settings(configure, case: str) -> None:  # type: ignore[no-untyped-def]
    path = configure(*BEYOND[case])
    assert read_client_settings(path) is None, case
    load_settings(path)  # valid: Settings reads it


def test_a_missing_file_goes_to_settings(configure, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    configure({}, None)
    missing = tmp_path / "nowhere.toml"
    assert read_client_settings(missing) is None
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(missing)


def test_the_file_is_found_as_settings_finds_it(configure, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """--config, else $SPENDSTREAM_CONFIG, else ./spendstream.toml."""
    configure({}, '[clickhouse]\ndsn = "chdb:///cwd"\n')
    other = tmp_path / "other.toml"
    other.write_text('[clickhouse]\ndsn = "chdb:///named"\n')
    implicit = read_client_settings(None)
    assert implicit is not None and implicit.dsn == "chdb:///cwd"
    explicit = read_client_settings(other)
    assert explicit is not None and explicit.dsn == "chdb:///named"
    configure({"SPENDSTREAM_CONFIG": str(other)}, None)
    from_env = read_client_settings(None)
    assert from_env is not None and from_env.dsn == load_settings(None).clickhouse.dsn


def test_its_list_of_settings_fields_is_the_models() -> None:
    assert set(Settings.model_fields) == SETTINGS_FIELDS
