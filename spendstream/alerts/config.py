"""Budget and alert configuration (``[[budgets]]`` and ``[alerts]`` in the TOML file).

:func:`load_alerting` validates both with pydantic and raises
:class:`spendstream.config.ConfigError` with one line per problem, naming the file, the key
(``budgets[2].thresholds``), the bad value and how to fix it.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import apprise
from pydantic import Field, ValidationError, field_validator, model_validator

from spendstream.config import (
    ConfigError,
    CurrencySettings,
    Settings,
    redact_url,
    resolve_config_path,
)
from spendstream.config.models import (
    NAME_PATTERN,
    Duration,
    Money,
    Percent,
    Scoped,
    Strict,
    problem_line,
)
from spendstream.events import UnitName
from spendstream.notifications.config import DeliveryConfig
from spendstream.periods import Period
from spendstream.sinks.params import Params
from spendstream.sinks.scopes import unit_map_sql

# What to write instead, per field name, shown after the validation message.
FIXES = {
    "name": "a unique name of letters, digits, '.', '_' or '-', e.g. name = \"search-prod\"",
    "scope": 'a table of tag filters, e.g. scope = { team = "search", env = ["prod", "*-eu"] }',
    "period": 'one of "day", "week", "month", "quarter", "year"',
    "fiscal_year_start": "the first month of the fiscal year, 1 to 12, e.g. "
    "fiscal_year_start = 4 (April; quarters start in April, July, October, January)",
    "timezone": 'an IANA zone name, e.g. timezone = "Europe/Paris"',
    "limit": 'a positive USD amount as a string or number, e.g. limit = "5000"',
    "thresholds": "percentages of the limit between 1 and 1000, e.g. thresholds = [50, 80, 100]",
    "forecast": "true or false",
    "spike": 'true, false, or a table { window = "5m", baseline = "1h", factor = 3 }',
    "channels": 'names defined under [alerts.channels], e.g. channels = ["oncall-slack"]',
    "owner": 'free text, e.g. owner = "search-team@example.com"',
    "unit": 'a usage unit name, or "tokens", e.g. unit = "vector_queries" (leave it out for all '
    "spend)",
    "reminder": 'a duration such as "4h" (or leave it out for no reminders)',
    "group_wait": 'a duration such as "2s"',
    "evaluate_every": 'a duration such as "30s"',
    "forecast_window": 'a duration such as "6h"',
    "late_grace": 'a duration of zero or more such as "1d" (how long after a period ends late '
    'events can still cross its thresholds; "0s": never)',
    "forecast_min_span": 'a duration such as "1h" (at most forecast_window)',
    "forecast_min_percent": "a percentage of the limit between 0 and 100, e.g. 5",
    "send_timeout": 'a duration such as "15s"',
    "slack_webhook_base": 'an http(s) URL, e.g. "http://relay:8080/services"',
    "block_at": "a percentage of the limit at which admission blocks, e.g. block_at = 100",
    "currency": 'the ISO 4217 code the limit is written in, e.g. currency = "EUR" (leave it '
    "out for USD); its rates come from spendstream rates import or [currency] fixed_rates",
    "rollover_cap": "the most carried from one period into the next, in the limit's currency, "
    'e.g. rollover_cap = "500"',
}


class SpikeConfig(Strict):
    """Spike rule: spend over the last ``window`` runs at more than ``factor`` times the mean
    rate of the ``baseline`` before it, and is at least ``min_spend``."""

    window: Duration = timedelta(minutes=5)
    baseline: Duration = timedelta(hours=1)
    factor: Annotated[Decimal, Field(gt=1)] = Decimal(3)
    min_spend: Annotated[Decimal, Field(ge=0)] = Decimal(1)
    cooldown: Duration = timedelta(hours=1)


class PromptGrowthConfig(Strict):
    """prompt_growth rule: the p50 of input tokens per event over the last 7 days is at least
    ``increase_pct`` % above the p50 of the 7 days before, both with ``min_events`` or more."""

    increase_pct: Annotated[int, Field(ge=1, le=10_000)] = 30
    min_events: Annotated[int, Field(ge=1)] = 100


class AlertsConfig(Strict):
    # One alerting worker per ClickHouse: set false on the others (each would send the outbox).
    enabled: bool = True
    # Apprise URLs carry webhook tokens and passwords: kept out of repr, logs and errors.
    channels: dict[str, str] = Field(default_factory=dict, repr=False)
    group_wait: Duration = timedelta(seconds=2)
    evaluate_every: Duration = timedelta(seconds=30)
    forecast_window: Duration = timedelta(hours=6)
    # An ended period is evaluated again (thresholds only) this long after it ends: events that
    # arrive late (an SDK replaying its spool after an outage across midnight) still alert.
    late_grace: Duration = timedelta(days=1)
    # Evidence a forecast needs (docs/alerts.md): spend seen for this long, and this share of
    # the limit already spent. Budgets may set their own.
    forecast_min_span: Duration = timedelta(hours=1)
    forecast_min_percent: Percent = Decimal(1)
    top_contributors: Annotated[int, Field(ge=0, le=20)] = 3
    slack_webhook_base: str | None = None
    spike: SpikeConfig = SpikeConfig()
    delivery: DeliveryConfig = DeliveryConfig()

    @field_validator("late_grace")
    @classmethod
    def _not_negative(cls, grace: timedelta) -> timedelta:
        if grace < timedelta(0):
            raise ValueError("must be zero or more")
        return grace

    @field_validator("channels")
    @classmethod
    def _check_urls(cls, channels: dict[str, str]) -> dict[str, str]:
        for name, url in channels.items():
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"channel name {name!r} must match {NAME_PATTERN}")
            if apprise.Apprise.instantiate(url) is None:
                shown = redact_url(url)  # channel URLs carry tokens and passwords
                raise ValueError(f"channel {name!r}: {shown!r} is not a valid Apprise URL")
        return channels


class BudgetConfig(Scoped):
    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]
    period: Period = "month"
    limit: Money
    thresholds: list[Annotated[int, Field(ge=1, le=1000)]] = Field(
        default_factory=lambda: [50, 80, 100], min_length=1
    )
    forecast: bool = True
    forecast_window: Duration | None = None  # None: [alerts] forecast_window
    forecast_min_span: Duration | None = None
    forecast_min_percent: Percent | None = None
    spike: SpikeConfig | bool = False
    prompt_growth: PromptGrowthConfig | None = None
    channels: list[str] = Field(default_factory=list)
    owner: str = ""
    reminder: Duration | None = None
    # Percent of the limit at which admission blocks the budget's scope (a quota; see quotas/).
    block_at: Annotated[int, Field(ge=1, le=1000)] | None = None
    # Only the spend on one cost driver: a usage unit (its variants included) or "tokens".
    unit: UnitName | None = None
    # The currency the limit is in (None: USD); spend is converted at each day's rate.
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None
    # Carry the previous period's unused budget (or overspend) into this one, at most this much
    # either way (None: no rollover); see spendstream.alerts.rollover.
    rollover_cap: Annotated[Decimal, Field(ge=0, max_digits=30, decimal_places=10)] | None = None

    @field_validator("thresholds")
    @classmethod
    def _sort_thresholds(cls, thresholds: list[int]) -> list[int]:
        return sorted(set(thresholds))

    @field_validator("currency")
    @classmethod
    def _not_usd(cls, currency: str | None) -> str | None:
        if currency == "USD":
            raise ValueError("USD is the default: leave currency out")
        return currency

    @model_validator(mode="after")
    def _block_at_in_usd(self) -> BudgetConfig:
        # Admission counts USD at the call; a limit whose worth moves with each day's rate,
        # or with last period's leftover, is not a quota it can enforce.
        for name in ("currency", "rollover_cap"):
            if getattr(self, name) is not None and self.block_at is not None:
                raise ValueError(
                    f"block_at does not apply to a budget with {name}; remove block_at (and "
                    "add a [[quotas]] entry with a USD limit to block: docs/guardrails.md)"
                )
        return self

    @model_validator(mode="after")
    def _cap_below_limit(self) -> BudgetConfig:
        if self.rollover_cap is not None and self.rollover_cap >= self.limit:
            raise ValueError(
                f"rollover_cap ({self.rollover_cap}) must be below the limit ({self.limit}), so "
                "an overspend carried over still leaves a positive limit; lower rollover_cap"
            )
        return self

    @model_validator(mode="after")
    def _unit_without_block(self) -> BudgetConfig:
        if self.unit is not None and self.block_at is not None:
            raise ValueError(
                "block_at does not apply to a budget with unit (its quota would count all "
                "spend); remove block_at, or unit; to block on the unit's quantity add a quota: "
                "[[quotas]] units = { vector_queries = 1000 } (docs/guardrails.md)"
            )
        return self

    def burn_window(self, alerts: AlertsConfig) -> timedelta:
        """How far back the forecast's burn rate is measured (this budget's, or [alerts]')."""
        return alerts.forecast_window if self.forecast_window is None else self.forecast_window

    def forecast_evidence(self, alerts: AlertsConfig) -> tuple[timedelta, Decimal]:
        """(minimum observed span, minimum percent of the limit) for a forecast."""
        span = self.forecast_min_span
        percent = self.forecast_min_percent
        return (
            alerts.forecast_min_span if span is None else span,
            alerts.forecast_min_percent if percent is None else percent,
        )

    def spend_sql(self, params: Params) -> str:
        """The SQL expression of this budget's spend per ledger or rollup row: ``cost_total``,
        or the cost of its ``unit`` (that unit and its variants, from the ``unit_costs`` map,
        the names bound in ``params``; ``tokens``: the token cost)."""
        if self.unit is None:
            return "cost_total"
        if self.unit == "tokens":
            return "(cost_total - cost_units)"
        return unit_map_sql(self.unit, "unit_costs", params)

    def spike_rule(self, defaults: SpikeConfig) -> SpikeConfig | None:
        if self.spike is True:
            return defaults
        return self.spike or None


class Alerting(Strict):
    """Validated budgets and alert settings, plus the file they came from (for messages)."""

    budgets: tuple[BudgetConfig, ...]
    alerts: AlertsConfig
    source: str
    currency: CurrencySettings = CurrencySettings()

    def budget(self, name: str) -> BudgetConfig:
        for budget in self.budgets:
            if budget.name == name:
                return budget
        known = ", ".join(b.name for b in self.budgets) or "none"
        raise KeyError(f"no budget named {name!r} in {self.source} (budgets: {known})")


def load_alerting(settings: Settings, config_path: str | Path | None = None) -> Alerting:
    """Validate ``settings.budgets`` and ``settings.alerts``; raise ConfigError on problems."""
    path = resolve_config_path(config_path) if config_path else settings.source
    source = str(path) if path else "environment/defaults"
    problems: list[str] = []
    alerts: AlertsConfig | None = None
    try:
        alerts = AlertsConfig.model_validate(settings.alerts)
    except ValidationError as exc:
        problems += [problem_line("alerts", e, FIXES) for e in exc.errors(include_url=False)]
    budgets: list[tuple[int, BudgetConfig]] = []
    for index, raw in enumerate(settings.budgets):
        try:
            budgets.append((index, BudgetConfig.model_validate(raw)))
        except ValidationError as exc:
            problems += [
                problem_line(f"budgets[{index}]", e, FIXES) for e in exc.errors(include_url=False)
            ]
    seen: set[str] = set()
    for index, budget in budgets:
        if budget.name in seen:
            problems.append(
                f"  budgets[{index}].name = {budget.name!r}: duplicate; fix: {FIXES['name']}"
            )
        seen.add(budget.name)
        defined = alerts.channels if alerts else {}
        for channel in budget.channels if alerts else ():
            if channel not in defined:
                listed = ", ".join(defined) or "none"
                problems.append(
                    f"  budgets[{index}].channels = {budget.channels!r}: {channel!r} is not "
                    f"defined; fix: add it under [alerts.channels] (defined: {listed})"
                )
    if problems or alerts is None:
        raise ConfigError(
            "\n".join([f"invalid budgets/alerts configuration in {source}:", *problems])
        )
    return Alerting(
        budgets=tuple(b for _, b in budgets),
        alerts=alerts,
        source=source,
        currency=settings.currency,
    )
