"""The few settings a CLI command needs to ask a running worker, read without the settings model.

``spendstream report`` and ``sql`` through a worker's API need only the DSN (where the worker
announces itself), the API token, the log options, the display currency and the secrets to mask
in logs. Importing pydantic-settings and building :class:`spendstream.config.Settings` costs
~80 ms of CPU, a quarter of such a command; this module reads the same file and environment with
the standard library instead.

It is exact or silent: :func:`read_client_settings` returns what ``Settings`` would hold for
these keys, or None whenever the configuration holds anything it does not check exactly the
way ``Settings`` does (another section, a key it does not read, a value ``Settings`` would
refuse, a JSON-valued section in the environment, an unreadable file). The caller then loads the
full ``Settings``, which judges the whole configuration and reports any error (file, key, fix) as
before. ``tests/test_client_settings.py`` checks the two agree.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spendstream.redaction import configured_secrets

if TYPE_CHECKING:
    from spendstream.config import Settings

DEFAULT_CONFIG_FILE = "spendstream.toml"
ENV_PREFIX = "spendstream_"  # environment names are read case-insensitively, as Settings does
NESTED = "__"
# Settings' top-level fields (tests/test_client_settings.py keeps this list equal to the model's):
# a SPENDSTREAM_* variable naming none of them is ignored by Settings, so it is here too.
SETTINGS_FIELDS = frozenset(
    {
        "kafka",
        "clickhouse",
        "worker",
        "leadership",
        "producer",
        "log",
        "api",
        "reconcile",
        "ingest",
        "guardrails",
        "insights",
        "digest",
        "currency",
        "agents",
        "budgets",
        "quotas",
        "anomalies",
        "alerts",
        "pricing",
    }
)


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _matching(pattern: str) -> Callable[[Any], bool]:
    compiled = re.compile(pattern)
    return lambda value: isinstance(value, str) and compiled.fullmatch(value) is not None


# (section, key): the check Settings applies to it. Any other key sends the caller to Settings.
READ: dict[tuple[str, str], Callable[[Any], bool]] = {
    ("clickhouse", "dsn"): _text,
    ("clickhouse", "database"): _text,
    ("clickhouse", "cluster"): _text,
    ("api", "token"): _text,
    ("log", "level"): _text,
    ("log", "format"): _matching("auto|console|json"),
    ("currency", "display"): _matching("[A-Z]{3}"),
}
SECTIONS = frozenset(section for section, _ in READ)


def _table(value: Any) -> bool:
    return isinstance(value, dict)


def _tables(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


# Sections Settings holds as plain tables (their parts validate them when used).
FREE: dict[str, Callable[[Any], bool]] = {
    "alerts": _table,
    "pricing": _table,
    "budgets": _tables,
    "quotas": _tables,
    "anomalies": _tables,
}


@dataclass(frozen=True)
class ClientSettings:
    """What a command talking to a worker's API reads from the configuration."""

    dsn: str
    api_token: str | None
    log_level: str
    log_level_set: bool  # log.level given in the file or environment (not the default)
    log_format: str
    currency_display: str | None
    secrets: tuple[str, ...]  # Settings.secret_values()


def client_settings_of(settings: Settings) -> ClientSettings:
    """The same view taken from full :class:`~spendstream.config.Settings`."""
    token = settings.api.token
    return ClientSettings(
        dsn=settings.clickhouse.dsn,
        api_token=token.get_secret_value() if token is not None else None,
        log_level=settings.log.level,
        log_level_set="level" in settings.log.model_fields_set,
        log_format=settings.log.format,
        currency_display=settings.currency.display,
        secrets=tuple(settings.secret_values()),
    )


def resolve_config_path(explicit: str | Path | None) -> Path | None:
    """The config file to read, or None to run on defaults and environment only."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get("SPENDSTREAM_CONFIG")
    if from_env:
        return Path(from_env)
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.exists() else None


def read_client_settings(
    explicit: str | Path | None, environ: Mapping[str, str] | None = None
) -> ClientSettings | None:
    """The client view of the configuration (``--config``, else ``$SPENDSTREAM_CONFIG``, else
    ``./spendstream.toml``, under ``SPENDSTREAM_*`` variables), or None: ask ``Settings``."""
    path = resolve_config_path(explicit)
    document: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as handle:
                document = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError):
            return None
    from_file = _file_values(document)
    from_env = _env_values(os.environ if environ is None else environ)
    if from_file is None or from_env is None:
        return None
    values = {**from_file, **from_env}  # the environment beats the file, key by key
    if not all(READ[key](value) for key, value in values.items()):
        return None
    alerts = document.get("alerts", {})
    channels = alerts.get("channels", {})
    if not isinstance(channels, dict):
        return None  # Settings.secret_values() would fail on it: let it
    dsn = values.get(("clickhouse", "dsn"), "chdb://./data/clickhouse")
    token = values.get(("api", "token"))
    return ClientSettings(
        dsn=dsn,
        api_token=token,
        log_level=values.get(("log", "level"), "info"),
        log_level_set=("log", "level") in values,
        log_format=values.get(("log", "format"), "auto"),
        currency_display=values.get(("currency", "display")),
        # as Settings.secret_values() (no reconciliation section here: it sends to Settings)
        secrets=tuple(configured_secrets(dsn, channels, [token] if token is not None else [])),
    )


def _file_values(document: dict[str, Any]) -> dict[tuple[str, str], Any] | None:
    """The file's values of :data:`READ` keys, or None when it holds anything else."""
    found: dict[tuple[str, str], Any] = {}
    for section, table in document.items():
        if section in FREE:
            if not FREE[section](table):
                return None
        elif section in SECTIONS and isinstance(table, dict):
            for key, value in table.items():
                if (section, key) not in READ:
                    return None
                found[section, key] = value
        else:
            return None
    return found


def _env_values(environ: Mapping[str, str]) -> dict[tuple[str, str], str] | None:
    """``SPENDSTREAM_SECTION__KEY`` values of :data:`READ` keys, or None when a variable sets
    anything else Settings would read."""
    found: dict[tuple[str, str], str] = {}
    for name, value in environ.items():
        lowered = name.lower()
        if not lowered.startswith(ENV_PREFIX):
            continue
        section, _, key = lowered[len(ENV_PREFIX) :].partition(NESTED)
        if section not in SETTINGS_FIELDS:
            continue  # e.g. SPENDSTREAM_CONFIG, SPENDSTREAM_TOKEN: not settings
        if (section, key) not in READ or (section, key) in found:
            return None  # another key, a whole section as JSON, or two spellings of one name
        found[section, key] = value
    return found
