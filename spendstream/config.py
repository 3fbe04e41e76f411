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
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_CONFIG_FILE = "spendstream.toml"


class ConfigError(Exception):
    """Invalid configuration; the message says where and how to fix it."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KafkaSettings(Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    usage_topic: str = "spendstream.usage.v1"
    dead_letter_topic: str = "spendstream.usage.dlq"
    outcome_topic: str = "spendstream.outcomes.v1"
    client_id: str = "spendstream"


class ClickHouseSettings(Section):
    dsn: str = Field(
        default="chdb://./data/clickhouse",
        description="chdb:///abs/dir or chdb://./rel/dir for embedded chDB; http(s)://host:8123",
    )
    database: str = "spendstream"


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
    # Dead-letter limit (docs/failure-model.md): the worker stops (exit 70) when more than
    # dlq_max_ratio of the last dlq_ratio_window events, or dlq_max_consecutive events in a row
    # (0: no limit), were dead-lettered. dlq_max_ratio = 1 disables the ratio.
    dlq_max_ratio: Annotated[float, Field(gt=0, le=1)] = 0.9
    dlq_ratio_window: Annotated[int, Field(ge=1)] = 100_000
    dlq_max_consecutive: Annotated[int, Field(ge=0)] = 10_000


class ProducerSettings(Section):
    spool_dir: str = "./data/spool"
    spool_max_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024 * 1024
    queue_size: Annotated[int, Field(ge=1)] = 100_000
    record_timeout_ms: Annotated[float, Field(ge=0)] = 5.0
    linger_ms: Annotated[int, Field(ge=0)] = 20
    compression: str | None = "lz4"
    fsync_interval_s: Annotated[float, Field(ge=0)] = 1.0
    partition_key_tag: str | None = "team"
    pack_max_events: Annotated[int, Field(ge=1, le=10_000)] = 100
    default_tags: dict[str, str] = Field(default_factory=dict)


# Model tiers per provider, most capable first (rightsize candidates are the lower tiers' models).
DEFAULT_MODEL_TIERS: dict[str, list[list[str]]] = {
    "openai": [
        ["gpt-5", "gpt-4.1", "gpt-4o", "o3"],
        ["gpt-5-mini", "gpt-4.1-mini", "gpt-4o-mini", "o4-mini"],
        ["gpt-5-nano", "gpt-4.1-nano"],
    ],
    "anthropic": [
        ["claude-opus-4-5", "claude-opus-4-1"],
        ["claude-sonnet-4-5", "claude-sonnet-4"],
        ["claude-haiku-4-5", "claude-3-5-haiku"],
    ],
    "google": [["gemini-2.5-pro"], ["gemini-2.5-flash"], ["gemini-2.5-flash-lite"]],
    "mistral": [["mistral-large"], ["mistral-medium"], ["mistral-small"]],
}


class InsightsSettings(Section):
    """``[insights]``: thresholds and markers of the insights (docs/insights.md)."""

    tiers: dict[str, list[list[str]]] = Field(default_factory=lambda: dict(DEFAULT_MODEL_TIERS))
    # rightsize flag: at least this many requests with p50 input and output at most these
    high_volume_requests: Annotated[int, Field(ge=1)] = 1_000
    short_input_tokens: Annotated[int, Field(ge=0)] = 1_000
    short_output_tokens: Annotated[int, Field(ge=0)] = 300
    # batch: features that are not interactive, and the tag marking events as not interactive
    batch_features: list[str] = Field(default_factory=list)
    interactive_tag: str = "interactive"
    # caching: a provider prompt cache serves repeats within this gap; "paid twice" window
    prompt_cache_window_s: Annotated[int, Field(ge=1)] = 300
    paid_twice_window_s: Annotated[int, Field(ge=1)] = 3_600
    # governance: tags every event must carry, per env tag value ("*": every other env)
    required_tags: dict[str, list[str]] = Field(default_factory=lambda: {"*": ["team", "app"]})
    # events lacking one: stored with empty values (reported as "unallocated") or dead-lettered
    untagged_policy: Literal["unallocated", "dead_letter"] = "unallocated"

    def required_for(self, env: str) -> list[str]:
        """The tags an event of ``env`` must carry."""
        return self.required_tags.get(env, self.required_tags.get("*", []))

    def missing_tags(self, tags: dict[str, str]) -> list[str]:
        """The required tags absent or empty in ``tags`` (its ``env`` picks the list)."""
        return [key for key in self.required_for(tags.get("env", "")) if not tags.get(key)]


class DigestSettings(Section):
    """``[digest]``: a periodic summary sent through the alert outbox (docs/insights.md)."""

    every: Literal["1d", "1w"] = Field(default="1w", description="UTC day or ISO week")
    channels: list[str] = Field(
        default_factory=list, description="names from [alerts.channels]; none: no digest"
    )
    top: Annotated[int, Field(ge=1, le=50)] = 5


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
    worker: WorkerSettings = WorkerSettings()
    producer: ProducerSettings = ProducerSettings()
    log: LogSettings = LogSettings()
    insights: InsightsSettings = InsightsSettings()
    digest: DigestSettings = DigestSettings()
    # Sections owned by later parts (budgets, alerts, pricing) are plain tables validated there.
    budgets: list[dict[str, Any]] = Field(default_factory=list)
    alerts: dict[str, Any] = Field(default_factory=dict)
    pricing: dict[str, Any] = Field(default_factory=dict)
    _source: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> Path | None:
        """The config file these settings were read from (None: defaults/environment only)."""
        return self._source

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


def resolve_config_path(explicit: str | Path | None) -> Path | None:
    """The config file to read, or None to run on defaults and environment only."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get("SPENDSTREAM_CONFIG")
    if from_env:
        return Path(from_env)
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.exists() else None


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
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        lines.append(f"  {key}{shown}: {hint} (or set {env_name})")
    return "\n".join(lines)
