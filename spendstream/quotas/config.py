"""Quota configuration (``[[quotas]]``, plus budgets with ``block_at``), validated like budgets.

:func:`load_quotas` raises :class:`spendstream.config.ConfigError` with one line per problem,
naming the file, the key (``quotas[1].per``), the bad value and the fix. A budget with
``block_at = P`` becomes a quota named after it: its scope, its period, a limit of P % of its
limit, action ``block``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, ValidationError, field_validator, model_validator

from spendstream.alerts.config import FIXES, Alerting, BudgetConfig, load_alerting
from spendstream.config import ConfigError, Settings, resolve_config_path
from spendstream.config.models import NAME_PATTERN, Money, Scoped, Strict, problem_line
from spendstream.decisions import UNIT_SCALE, QuotaSpec, Unit
from spendstream.events import TAG_KEY_PATTERN, UnitName, UnitQuantity
from spendstream.periods import period_bounds, period_label

QuotaPeriod = Literal["minute", "hour", "day", "week", "month", "quarter", "year"]
QUOTA_FIXES = {
    **FIXES,
    "per": 'one of "minute", "hour", "day", "week", "month", "quarter", "year"',
    "throttle_fraction": "the share of calls admitted while over the limit, above 0 and below "
    "1, e.g. throttle_fraction = 0.1 (one call in ten)",
    "group_by": 'a list of tag names, e.g. group_by = ["user"]',
    "tokens": "a positive whole number of tokens, e.g. tokens = 2_000_000",
    "requests": "a positive whole number of requests, e.g. requests = 500",
    "steps": "a positive whole number of recorded events (a run's steps), e.g. steps = 40 "
    'with group_by = ["run_id"]',
    "units": "one usage unit and its positive quantity per period, e.g. "
    "units = { vector_queries = 1000 } (variants counted: units = { images = 50 })",
    "action": '"block", "warn" or "throttle" (with throttle_fraction = 0.1)',
    "when_stale": '"open" (allow) or "closed" (deny) when the admission view is too old',
    "block_at": "a percentage of the budget's limit, e.g. block_at = 100",
}


class QuotaConfig(Scoped):
    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]
    group_by: list[str] = Field(default_factory=list, max_length=4)
    limit: Money | None = None
    tokens: Annotated[int, Field(gt=0)] | None = None
    requests: Annotated[int, Field(gt=0)] | None = None
    # Recorded events (model and tool calls alike): with group_by = ["run_id"], a run's steps.
    steps: Annotated[int, Field(gt=0)] | None = None
    # A quantity of one usage unit (its dotted variants included), e.g. {"vector_queries": 1000}.
    units: dict[UnitName, UnitQuantity] | None = None
    per: QuotaPeriod = "day"
    action: Literal["block", "warn", "throttle"] = "block"
    # action = "throttle": over the limit, admission lets this share of the calls through.
    throttle_fraction: Annotated[Decimal, Field(gt=0, lt=1, decimal_places=6)] = Decimal("0.1")
    when_stale: Literal["open", "closed"] = "open"
    channels: list[str] = Field(default_factory=list)
    owner: str = ""

    @field_validator("group_by")
    @classmethod
    def _check_group_by(cls, group_by: list[str]) -> list[str]:
        for key in group_by:
            if not TAG_KEY_PATTERN.fullmatch(key):
                raise ValueError(f"group_by entry {key!r} is not a tag name")
        if len(set(group_by)) != len(group_by):
            raise ValueError("group_by lists a tag twice")
        return group_by

    @model_validator(mode="after")
    def _one_limit(self) -> QuotaConfig:
        given = [
            n
            for n in ("limit", "tokens", "requests", "steps", "units")
            if getattr(self, n) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "set exactly one of limit (USD), tokens, requests, steps or units "
                f"(got {given or 'none'})"
            )
        if self.units is not None:
            if len(self.units) != 1:
                raise ValueError(
                    f"units names {len(self.units)} units; a quota counts exactly one: "
                    "units = { vector_queries = 1000 } (one quota per unit)"
                )
            [(name, quantity)] = self.units.items()
            if name in UNIT_SCALE:
                raise ValueError(f"units = {{ {name} = ... }}: write {name} = N instead")
            if quantity <= 0:
                raise ValueError(f"units.{name} = {quantity}: the quantity must be positive")
        return self

    @property
    def unit(self) -> Unit:
        if self.units is not None:
            return next(iter(self.units))
        if self.limit is not None:
            return "usd"
        return "tokens" if self.tokens else "steps" if self.steps else "requests"

    @property
    def amount(self) -> Decimal:
        if self.units is not None:
            return next(iter(self.units.values()))
        if self.limit is not None:
            return Decimal(self.limit)
        return Decimal(self.tokens or self.steps or self.requests or 0)

    def spec(self) -> QuotaSpec:
        return QuotaSpec(
            name=self.name,
            scope=dict(self.scope_filters),
            group_by=tuple(self.group_by),
            unit=self.unit,
            limit=self.amount,
            per=self.per,
            # On the wire a throttle quota blocks, with the share it lets through: an SDK that
            # predates throttling then blocks (the safe side) instead of rejecting the message.
            action="warn" if self.action == "warn" else "block",
            throttle=self.throttle_fraction if self.action == "throttle" else None,
            when_stale=self.when_stale,
        )

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        return quota_bounds(self.per, self.timezone, now, self.fiscal_year_start)

    def label(self, start: datetime) -> str:
        per = self.per
        if per == "minute" or per == "hour":
            local = start.astimezone(ZoneInfo(self.timezone))
            return f"{per} {local:%Y-%m-%d %H:%M} ({self.timezone})"
        return period_label(per, self.timezone, start, self.fiscal_year_start)


def quota_bounds(
    per: QuotaPeriod, timezone: str, now: datetime, first_month: int = 1
) -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC of the ``per`` period containing ``now`` (minute and hour
    floor the local wall time; day to year are the budgets' calendar periods)."""
    if per != "minute" and per != "hour":
        return period_bounds(per, timezone, now, first_month)
    local = now.astimezone(ZoneInfo(timezone))
    if per == "minute":
        start, size = local.replace(second=0, microsecond=0), timedelta(minutes=1)
    else:
        start, size = local.replace(minute=0, second=0, microsecond=0), timedelta(hours=1)
    return start.astimezone(UTC), (start + size).astimezone(UTC)


def from_budget(budget: BudgetConfig) -> QuotaConfig:
    """The quota a budget's ``block_at`` defines (same name, scope and period)."""
    assert budget.block_at is not None
    return QuotaConfig(
        name=budget.name,
        scope=budget.scope,
        limit=budget.limit * budget.block_at / 100,
        per=budget.period,
        timezone=budget.timezone,
        fiscal_year_start=budget.fiscal_year_start,
        channels=budget.channels,
        owner=budget.owner,
    )


class Quotas(Strict):
    """Validated quotas (configured and from budgets), the alert settings, and their source."""

    quotas: tuple[QuotaConfig, ...]
    alerting: Alerting
    source: str

    def quota(self, name: str) -> QuotaConfig:
        for quota in self.quotas:
            if quota.name == name:
                return quota
        # No file path: through the worker's API this reaches callers (its config is not theirs).
        known = ", ".join(q.name for q in self.quotas) or "none"
        raise KeyError(
            f"no quota named {name[:80]!r} (quotas: {known}; `spendstream quotas list` or "
            "GET /api/v1/quotas lists them)"
        )


def load_quotas(settings: Settings, config_path: str | Path | None = None) -> Quotas:
    """Validate ``settings.quotas`` (and budgets' ``block_at``); raise ConfigError on problems."""
    alerting = load_alerting(settings, config_path)
    path = resolve_config_path(config_path) if config_path else settings.source
    source = str(path) if path else "environment/defaults"
    problems: list[str] = []
    quotas: list[tuple[str, QuotaConfig]] = []
    for index, raw in enumerate(settings.quotas):
        try:
            quotas.append((f"quotas[{index}]", QuotaConfig.model_validate(raw)))
        except ValidationError as exc:
            problems += [
                problem_line(f"quotas[{index}]", e, QUOTA_FIXES)
                for e in exc.errors(include_url=False)
            ]
    quotas += [
        (f"budgets[{i}].block_at", from_budget(b))
        for i, b in enumerate(alerting.budgets)
        if b.block_at is not None
    ]
    seen: set[str] = set()
    for where, quota in quotas:
        if quota.name in seen:
            problems.append(
                f"  {where}: quota name {quota.name!r} is used twice (a budget with block_at "
                f"is a quota of the same name); fix: {FIXES['name']}"
            )
        seen.add(quota.name)
        for channel in quota.channels:
            if channel not in alerting.alerts.channels:
                listed = ", ".join(alerting.alerts.channels) or "none"
                problems.append(
                    f"  {where}.channels = {quota.channels!r}: {channel!r} is not defined; "
                    f"fix: add it under [alerts.channels] (defined: {listed})"
                )
    if problems:
        raise ConfigError("\n".join([f"invalid quotas configuration in {source}:", *problems]))
    return Quotas(quotas=tuple(q for _, q in quotas), alerting=alerting, source=source)


__all__ = ["QuotaConfig", "Quotas", "from_budget", "load_quotas", "quota_bounds"]
