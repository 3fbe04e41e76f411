"""Configuration: one TOML file plus ``SPENDSTREAM_*`` environment variables.

Precedence (highest first): environment variables, the TOML file, defaults. Nested keys use a
double underscore in the environment: ``SPENDSTREAM_CLICKHOUSE__DSN=http://ch:8123``.

The file is found from ``--config``, else ``$SPENDSTREAM_CONFIG``, else ``./spendstream.toml``
when present. Errors raise :class:`ConfigError`, whose message names the file, the key, the bad
value and what is expected.
"""

from __future__ import annotations

import os
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from spendstream.events import MAX_TAG_KEY_CHARS, TAG_KEY_PATTERN

DEFAULT_CONFIG_FILE = "spendstream.toml"
REDACTED = "***"
# Schemes whose URLs are addresses, not credentials: only a password in them is secret.
ADDRESS_SCHEMES = ("http", "https", "chdb", "kafka", "tcp", "clickhouse", "clickhouses")
_SECRET_QUERY_KEYS = re.compile(r"(?i)(pass|secret|token|key|auth|pwd)")
_USERINFO_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)[^@\s/]+@")


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


class ApiSettings(Section):
    """The HTTP API (``/api/v1``) the worker and ``spendstream serve`` expose."""

    # The CLI's token when no SPENDSTREAM_TOKEN is set (else <chdb dir>/admin.token is tried).
    token: SecretStr | None = None
    # /metrics: "loopback" (open to 127.0.0.1/::1, a token elsewhere), "open", or "token".
    metrics: str = Field(default="loopback", pattern="^(loopback|open|token)$")
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    auth_cache_s: Annotated[float, Field(ge=0)] = 5.0
    # Failed authentications per client within the window before it gets 429s.
    max_auth_failures: Annotated[int, Field(ge=1)] = 10
    auth_failure_window_s: Annotated[float, Field(gt=0)] = 60.0
    # Limits on every query the API runs (free SQL included).
    max_execution_time_s: Annotated[int, Field(ge=1)] = 30
    max_result_rows: Annotated[int, Field(ge=1)] = 100_000
    max_rows_to_read: Annotated[int, Field(ge=1)] = 1_000_000_000
    max_result_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024 * 1024
    max_memory_usage: Annotated[int, Field(ge=1024 * 1024)] = 1024 * 1024 * 1024
    # When set, the worker creates an admin token there (mode 0600) unless the file already
    # holds a live one; `spendstream dev` points it at <data-dir>/admin.token.
    admin_token_file: str | None = None


# OpenTelemetry attribute (resource or span) -> spendstream tag. Span attributes win over resource.
DEFAULT_OTLP_TAGS: dict[str, str] = {
    "service.name": "app",
    "deployment.environment.name": "env",
    "deployment.environment": "env",
    "enduser.id": "user",
    "user.id": "user",
    "spendstream.team": "team",
    "spendstream.feature": "feature",
}
OtlpTagKey = Annotated[
    str, StringConstraints(pattern=TAG_KEY_PATTERN.pattern, max_length=MAX_TAG_KEY_CHARS)
]


class OtlpSettings(Section):
    """``[ingest.otlp]``: OTLP trace exports (OpenTelemetry Collector Kafka exporter) on a topic."""

    # Off when unset; the Collector's default traces topic is "otlp_spans".
    topic: str | None = None
    # "auto" tells protobuf from JSON by the first byte, so one topic may carry both.
    encoding: Literal["auto", "otlp_proto", "otlp_json"] = "auto"
    tags: dict[str, OtlpTagKey] = Field(default_factory=lambda: dict(DEFAULT_OTLP_TAGS))
    # Attributes named PREFIX + key become tag ``key`` (e.g. spendstream.tag.feature = "qa").
    tag_prefix: str | None = "spendstream.tag."


class HttpIngestSettings(Section):
    """``[ingest.http]``: ``POST /api/v1/events`` limits and back-pressure."""

    max_body_bytes: Annotated[int, Field(ge=1024, le=256 * 1024 * 1024)] = 5 * 1024 * 1024
    max_events: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    # How long a request waits for the broker's acknowledgement before answering 503.
    ack_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    # Events awaiting acknowledgement across requests; beyond it requests get 429.
    max_pending_events: Annotated[int, Field(ge=1)] = 200_000
    retry_after_s: Annotated[int, Field(ge=1, le=3600)] = 2


class IngestSettings(Section):
    otlp: OtlpSettings = OtlpSettings()
    http: HttpIngestSettings = HttpIngestSettings()


class GuardrailSettings(Section):
    """Quota decisions and admission (``[[quotas]]`` themselves are validated in quotas/)."""

    decisions_topic: str = "spendstream.quota.decisions.v1"
    # The evaluating worker re-decides every known key this often (period ends, expiries).
    evaluate_every_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    # ... and publishes a full snapshot this often (also the admission view's heartbeat).
    snapshot_every_s: Annotated[float, Field(gt=0, le=3600)] = 2.0
    # Admission treats its view as stale (and applies when_stale) after this long without news.
    stale_after_s: Annotated[float, Field(gt=0)] = 15.0


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


ReconcileProvider = Literal["openai", "anthropic"]
DEFAULT_ADMIN_URLS: dict[str, str] = {
    "openai": "https://api.openai.com",
    "anthropic": "https://api.anthropic.com",
}


class ProviderAccountSettings(Section):
    """One provider's admin API access and how its accounts map to our tags."""

    admin_key: SecretStr | None = Field(
        default=None,
        description="admin API key (OpenAI admin key, Anthropic sk-ant-admin...); never logged",
    )
    base_url: str = Field(
        default="",
        description="admin API base URL; empty: the provider's public API (tests: a stand-in)",
    )
    mapping: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="provider project / workspace / API key id -> our tags, e.g. "
        '{ proj_abc = { team = "search" } }',
    )
    timeout_s: Annotated[float, Field(gt=0, description="per request")] = 30.0
    max_attempts: Annotated[
        int, Field(ge=1, le=20, description="per page, retries on 429 / 5xx included")
    ] = 6


class ReconcileAlertSettings(Section):
    """A cell (day x provider x account x model) alerts when |invoiced - ours| exceeds both."""

    enabled: bool = Field(default=False, description="`reconcile alert` does nothing while false")
    percent: Annotated[
        Decimal, Field(ge=0, description="alert above this % of the invoice (and amount)")
    ] = Decimal(5)
    amount: Annotated[
        Decimal, Field(ge=0, description="alert above this many USD (and percent)")
    ] = Decimal(1)
    channels: list[str] = Field(
        default_factory=list, description="channel names from [alerts.channels]"
    )


class ReconcileSettings(Section):
    """``[reconcile]``: provider admin APIs, account mappings and the alert rule."""

    openai: ProviderAccountSettings = ProviderAccountSettings()
    anthropic: ProviderAccountSettings = ProviderAccountSettings()
    focus: dict[str, ProviderAccountSettings] = Field(
        default_factory=dict,
        description="per --provider name of FOCUS bills: { bedrock = { mapping = {...} } }",
    )
    alerts: ReconcileAlertSettings = ReconcileAlertSettings()

    def sections(self) -> list[ProviderAccountSettings]:
        """Every provider section (API providers, then FOCUS bill providers)."""
        return [self.openai, self.anthropic, *self.focus.values()]

    def provider(self, name: str) -> ProviderAccountSettings:
        """The section for ``name`` (an empty one when not configured)."""
        if name == "openai":
            return self.openai
        if name == "anthropic":
            return self.anthropic
        return self.focus.get(name, ProviderAccountSettings())


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
    # Sections owned by later parts (budgets, quotas, alerts, pricing) are plain tables validated
    # there (their models import config, so they cannot live here without a cycle).
    budgets: list[dict[str, Any]] = Field(default_factory=list)
    quotas: list[dict[str, Any]] = Field(default_factory=list)
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
        found: set[str] = set(url_secrets(self.clickhouse.dsn))
        channels = self.alerts.get("channels") if isinstance(self.alerts, dict) else None
        for url in (channels or {}).values():
            if isinstance(url, str):
                found.update(url_secrets(url, address=False))
        for admin in self.reconcile.sections():
            if admin.admin_key is not None:
                found.add(admin.admin_key.get_secret_value())
        if self.api.token is not None:
            found.add(self.api.token.get_secret_value())
        return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)

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


def url_secrets(url: str, address: bool | None = None) -> list[str]:
    """The secret parts of ``url``: the password (raw and decoded) and secret query values;
    for credential URLs (Apprise channels: ``slack://T/B/token``, ``mailto://user:pw@host``),
    also the whole URL and every user, host and path part that could be a token."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    address = parts.scheme in ADDRESS_SCHEMES if address is None else address
    userinfo, _, host = parts.netloc.rpartition("@")
    found = []
    if ":" in userinfo:
        password = userinfo.split(":", 1)[1]
        found += [password, unquote(password)]
    for item in parts.query.split("&"):
        key, _, value = item.partition("=")
        if value and _SECRET_QUERY_KEYS.search(key):
            found += [value, unquote(value)]
    if not address:
        found.append(url)
        parts_seen = [*userinfo.split(":"), host, *parts.path.split("/")]
        found += [part for part in parts_seen if len(part) >= 8 and "." not in part]
    return found


def redact_url(url: str) -> str:
    """``url`` safe to log or show: an address keeps its scheme, user and host with the
    password and secret query values masked (``http://writer:***@ch:8123``); any other URL
    (an Apprise channel carries tokens in its path) shows only its scheme (``slack://***``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    if parts.scheme not in ADDRESS_SCHEMES:
        return f"{parts.scheme}://{REDACTED}" if parts.scheme else REDACTED
    return redact_text(url, url_secrets(url))


def redact_text(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """``text`` with every secret in ``secrets`` and every URL password replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return _USERINFO_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}@", text)


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
        if isinstance(value, str) and "://" in value:
            value = redact_url(value)
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        lines.append(f"  {key}{shown}: {hint} (or set {env_name})")
    return "\n".join(lines)
