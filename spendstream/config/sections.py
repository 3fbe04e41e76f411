"""The feature sections of the configuration: API, ingest, guardrails, insights, digest and
reconciliation (the core sections and :class:`~spendstream.config.Settings` are in the package)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, SecretStr, StringConstraints, field_validator

from spendstream.config.base import Section
from spendstream.config.network import check_allowed_hosts, check_trusted_proxies
from spendstream.tag_keys import MAX_TAG_KEY_CHARS, TAG_KEY_PATTERN


class ApiSettings(Section):
    """The HTTP API (``/api/v1``) the worker and ``spendstream serve`` expose."""

    # The CLI's token when no SPENDSTREAM_TOKEN is set (else <chdb dir>/admin.token is tried).
    token: SecretStr | None = None
    metrics: str = Field(
        default="token",
        pattern="^(loopback|open|token)$",
        description='/metrics: "token" (any valid token), "loopback" (open to 127.0.0.1/::1 '
        'clients, a token elsewhere) or "open"',
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header names answered besides the bind address and localhost, "
        '127.0.0.1, ::1 (others get 400: DNS rebinding); ["*"]: any',
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or networks of reverse proxies whose X-Forwarded-For/-Proto are "
        "believed (the client address keys the auth-failure brake); empty: none",
    )
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

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, values: list[str]) -> list[str]:
        return check_allowed_hosts(values)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, values: list[str]) -> list[str]:
        return check_trusted_proxies(values)


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


class CurrencySettings(Section):
    """``[currency]``: the currency reports, budgets and the dashboard may show besides USD
    (the ledger stays in USD; docs/currencies.md)."""

    # ISO 4217 code shown beside USD (None: USD only); its rates are imported or fixed below.
    display: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    # Units of a currency one USD buys, used on every day (instead of imported daily rates).
    fixed_rates: dict[
        Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")],
        Annotated[Decimal, Field(gt=0, max_digits=26, decimal_places=12)],
    ] = Field(default_factory=dict)
    # A day without its own imported rate uses the newest earlier one at most this many days
    # old (weekends, holidays); older, it is a missing rate (an error naming the day).
    max_rate_age_days: Annotated[int, Field(ge=0, le=31)] = 4
