"""Configuration: one TOML file plus ``SPENDSTREAM_*`` environment variables.

Precedence (highest first): environment variables, the TOML file, defaults. Nested keys use a
double underscore in the environment: ``SPENDSTREAM_CLICKHOUSE__DSN=http://ch:8123``.

The file is found from ``--config``, else ``$SPENDSTREAM_CONFIG``, else ``./spendstream.toml``
when present. Errors raise :class:`ConfigError`, whose message names the file, the key, the bad
value and what is expected.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from spendstream.client_settings import resolve_config_path
from spendstream.config.agents import AgentSettings
from spendstream.config.base import ConfigError, Section
from spendstream.config.environment import bad_json_variables
from spendstream.config.network import check_brokers
from spendstream.config.sections import (
    DEFAULT_ADMIN_URLS,
    DEFAULT_MODEL_TIERS,
    DEFAULT_OTLP_TAGS,
    ApiSettings,
    CurrencySettings,
    DigestSettings,
    GuardrailSettings,
    HttpIngestSettings,
    IngestSettings,
    InsightsSettings,
    OtlpSettings,
    ProviderAccountSettings,
    ReconcileAlertSettings,
    ReconcileSettings,
)
from spendstream.redaction import (
    ADDRESS_SCHEMES,
    REDACTED,
    configured_secrets,
    redact_text,
    redact_url,
    url_secrets,
)


def state_dir() -> Path:
    """The per-user directory for spendstream's local state (spool, worker data).

    ``$XDG_STATE_HOME/spendstream``, else ``~/.local/state/spendstream`` (the XDG default): never
    relative to the current directory, so an app embedding the SDK or a worker started from a
    checkout leaves nothing behind where it happened to run.
    """
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "spendstream"


def default_spool_dir() -> str:
    return str(state_dir() / "spool")


def default_worker_data_dir() -> str:
    return str(state_dir() / "worker")


class KafkaSettings(Section):
    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        description="host:port[,host:port...] of the Kafka brokers (an entry without host or "
        "port is refused)",
    )
    usage_topic: str = "spendstream.usage.v1"
    dead_letter_topic: str = "spendstream.usage.dlq"
    outcome_topic: str = "spendstream.outcomes.v1"
    client_id: str = "spendstream"

    @field_validator("bootstrap_servers")
    @classmethod
    def _brokers(cls, value: str) -> str:
        return check_brokers(value)


class ClickHouseSettings(Section):
    # A secret when it carries a password: never logged or echoed whole (see redact_url).
    dsn: str = Field(
        default="chdb://./data/clickhouse",
        description="chdb:///abs/dir or chdb://./rel/dir for embedded chDB; http(s)://host:8123",
        repr=False,
    )
    database: str = "spendstream"
    # A ClickHouse cluster name (remote_servers): migrations create Replicated*MergeTree tables
    # ON CLUSTER plus Distributed tables (docs/scaling.md). Unset: one server or chDB.
    cluster: str | None = None


class WorkerSettings(Section):
    app_id: str = "spendstream-worker"
    # Kafka messages per batch (acknowledged together); an SDK message packs up to 100 events.
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 2_000
    # A batch is parsed and written in slices of this much payload (bounds memory).
    chunk_bytes: Annotated[int, Field(ge=1024)] = 16 * 1024 * 1024
    batch_within_s: Annotated[float, Field(gt=0, le=60)] = 0.25
    web_host: str = "127.0.0.1"
    web_port: Annotated[int, Field(ge=0, le=65535)] = 6066
    session_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    heartbeat_interval_s: Annotated[float, Field(gt=0)] = 1.0
    sink_retry_max_s: Annotated[float, Field(gt=0)] = 30.0
    # How long the worker keeps retrying ClickHouse at start before giving up (exit 1).
    startup_timeout_s: Annotated[float, Field(ge=0)] = 60.0
    # event_time bounds around the record's Kafka timestamp; events outside are dead-lettered
    # (docs/event-format.md). Always within 1970-01-01..2100-01-01 whatever is set here.
    event_max_age_days: Annotated[float, Field(gt=0)] = 400.0
    event_max_future_s: Annotated[float, Field(ge=0)] = 86_400.0
    # An event with event_id but no event_time: a copy re-sent within this many days of the
    # first gets the first's time, so it is the same ledger row (docs/event-format.md).
    event_id_lookback_days: Annotated[float, Field(gt=0)] = 7.0
    # Dead-letter limit (docs/failure-model.md): the worker stops (exit 70) when more than
    # dlq_max_ratio of the last dlq_ratio_window events, or dlq_max_consecutive events in a row
    # (0: no limit), were dead-lettered. dlq_max_ratio = 1 disables the ratio.
    dlq_max_ratio: Annotated[float, Field(gt=0, le=1)] = 0.9
    dlq_ratio_window: Annotated[int, Field(ge=1)] = 100_000
    dlq_max_consecutive: Annotated[int, Field(ge=0)] = 10_000
    # Faust's datadir goes here as <app_id>-data (never into the current directory).
    data_dir: str = Field(default_factory=default_worker_data_dir)


class LeadershipSettings(Section):
    """The lease that picks the one worker running alerting (see docs/scaling.md)."""

    # A dead holder is replaced after ttl + up to renew_every; renew at most every ttl / 3.
    lease_ttl_s: Annotated[float, Field(gt=0)] = 5.0
    renew_every_s: Annotated[float, Field(gt=0)] = 1.0

    @model_validator(mode="after")
    def _renew_often_enough(self) -> LeadershipSettings:
        if self.renew_every_s * 3 > self.lease_ttl_s:
            raise ValueError(
                f"renew_every_s ({self.renew_every_s}) must be at most lease_ttl_s / 3 "
                f"({self.lease_ttl_s / 3:g}); lower renew_every_s or raise lease_ttl_s"
            )
        return self


class ProducerSettings(Section):
    spool_dir: str = Field(default_factory=default_spool_dir)
    spool_max_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024 * 1024
    queue_size: Annotated[int, Field(ge=1)] = 100_000
    record_timeout_ms: Annotated[float, Field(ge=0)] = 5.0
    linger_ms: Annotated[int, Field(ge=0)] = 20
    compression: str | None = "lz4"
    fsync_interval_s: Annotated[float, Field(ge=0)] = 1.0
    partition_key_tag: str | None = "team"
    pack_max_events: Annotated[int, Field(ge=1, le=10_000)] = 100
    default_tags: dict[str, str] = Field(default_factory=dict)


class LogSettings(Section):
    level: str = "info"
    format: str = Field(default="auto", pattern="^(auto|console|json)$")


class Settings(BaseSettings):
    """The whole configuration. Sections mirror the TOML tables."""

    model_config = SettingsConfigDict(
        env_prefix="SPENDSTREAM_", env_nested_delimiter="__", extra="forbid"
    )

    kafka: KafkaSettings = KafkaSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    # Factories: their defaults read $XDG_STATE_HOME when settings are loaded, not at import.
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    leadership: LeadershipSettings = LeadershipSettings()
    producer: ProducerSettings = Field(default_factory=ProducerSettings)
    log: LogSettings = LogSettings()
    api: ApiSettings = ApiSettings()
    reconcile: ReconcileSettings = ReconcileSettings()
    ingest: IngestSettings = IngestSettings()
    guardrails: GuardrailSettings = GuardrailSettings()
    insights: InsightsSettings = InsightsSettings()
    digest: DigestSettings = DigestSettings()
    currency: CurrencySettings = CurrencySettings()
    agents: AgentSettings = AgentSettings()
    # Sections owned by later parts (budgets, quotas, alerts, pricing) are plain tables validated
    # there (their models import config, so they cannot live here without a cycle).
    budgets: list[dict[str, Any]] = Field(default_factory=list)
    quotas: list[dict[str, Any]] = Field(default_factory=list)
    anomalies: list[dict[str, Any]] = Field(default_factory=list)
    alerts: dict[str, Any] = Field(default_factory=dict, repr=False)  # channel URLs: secrets
    pricing: dict[str, Any] = Field(default_factory=dict)
    _source: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> Path | None:
        """The config file these settings were read from (None: defaults/environment only)."""
        return self._source

    def secret_values(self) -> list[str]:
        """Every configured secret string (DSN password, Apprise channel URLs and their
        credential parts, reconciliation admin keys, the CLI's API token), for log and error
        redaction; longest
        first."""
        channels = self.alerts.get("channels") if isinstance(self.alerts, dict) else None
        keys = [
            admin.admin_key.get_secret_value()
            for admin in self.reconcile.sections()
            if admin.admin_key is not None
        ]
        if self.api.token is not None:
            keys.append(self.api.token.get_secret_value())
        return configured_secrets(self.clickhouse.dsn, channels or {}, keys)

    @property
    def base_dir(self) -> Path | None:
        """Where relative paths in the config file are resolved from."""
        return self._source.parent if self._source else None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file (passed as init kwargs) so deployments can override it.
        return (env_settings, init_settings)


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load and validate settings; raises :class:`ConfigError` naming file, key and fix."""
    config_path = resolve_config_path(path)
    data: dict[str, Any] = {}
    if config_path is not None:
        data = read_toml(config_path)
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, config_path)) from None
    except SettingsError as exc:  # a list or table in the environment that is not JSON
        found = bad_json_variables(Settings, os.environ)
        raise ConfigError(
            "invalid configuration in the environment: "
            + ("; ".join(found) or f"{exc}: set it as JSON, e.g. '[\"a\"]' or '{{\"k\": 1}}'")
        ) from None
    settings._source = config_path
    return settings


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning I/O and syntax errors into :class:`ConfigError`."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (pass --config or create it)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def format_validation_error(exc: ValidationError, path: Path | None) -> str:
    """One line per problem: ``file: key = value: what is expected``."""
    where = str(path) if path else "environment/defaults"
    lines = [f"invalid configuration in {where}:"]
    for error in exc.errors(include_url=False):
        key = ".".join(str(part) for part in error["loc"])
        env_name = "SPENDSTREAM_" + "__".join(str(p) for p in error["loc"]).upper()
        if error["type"] == "extra_forbidden":
            hint = "unknown key; remove it or check its spelling"
        else:
            hint = error["msg"]
        value = error.get("input")
        if isinstance(value, str) and "://" in value:
            value = redact_url(value)
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        lines.append(f"  {key}{shown}: {hint} (or set {env_name})")
    return "\n".join(lines)


__all__ = [
    "ADDRESS_SCHEMES",
    "DEFAULT_ADMIN_URLS",
    "DEFAULT_MODEL_TIERS",
    "DEFAULT_OTLP_TAGS",
    "REDACTED",
    "ApiSettings",
    "ClickHouseSettings",
    "ConfigError",
    "CurrencySettings",
    "DigestSettings",
    "GuardrailSettings",
    "HttpIngestSettings",
    "IngestSettings",
    "InsightsSettings",
    "KafkaSettings",
    "LeadershipSettings",
    "LogSettings",
    "OtlpSettings",
    "ProducerSettings",
    "ProviderAccountSettings",
    "ReconcileAlertSettings",
    "ReconcileSettings",
    "Section",
    "Settings",
    "WorkerSettings",
    "default_spool_dir",
    "default_worker_data_dir",
    "format_validation_error",
    "load_settings",
    "read_toml",
    "redact_text",
    "redact_url",
    "resolve_config_path",
    "state_dir",
    "url_secrets",
]
