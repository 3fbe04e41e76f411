"""Anomaly rules (``[[anomalies]]`` in the TOML file), validated like budgets.

:func:`load_anomalies` raises :class:`spendstream.config.ConfigError` with one line per
problem, naming the file, the key (``anomalies[1].sensitivity``), the bad value and the fix.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator

from spendstream.alerts.config import FIXES, Alerting
from spendstream.config import ConfigError, Settings, resolve_config_path
from spendstream.config.models import NAME_PATTERN, Duration, Scoped, problem_line
from spendstream.events import TAG_KEY_PATTERN

INTERVAL = timedelta(hours=1)  # one evaluation interval: an hour of the week

ANOMALY_FIXES = {
    **FIXES,
    "group_by": 'tag names, one rule per combination of their values, e.g. group_by = ["team"]',
    "weeks": "how many past weeks the seasonal baseline reads, 1 to 12, e.g. weeks = 4",
    "min_weeks": "weeks of history before the seasonal baseline is used, e.g. min_weeks = 2",
    "sensitivity": "robust deviations (MAD × 1.4826) above the baseline, e.g. 4 (higher: fewer)",
    "min_delta_usd": 'the smallest excess in USD per hour that may alert, e.g. "5"',
    "min_spread_pct": "the spread's floor as a percentage of the baseline, e.g. 10",
    "unit_cost": "watch the cost per token too (a price change, lost cache hits), e.g. true",
    "unit_cost_min_spread_pct": "the cost per token's spread floor, % of its baseline, e.g. 5",
    "resolve_after": "quiet intervals (hours) before an episode resolves, e.g. 2",
    "settle": 'how long after an hour ends it is evaluated (late events), e.g. "2m"',
}


class AnomalyRule(Scoped):
    """One ``[[anomalies]]`` rule: spend per hour of ``scope``, per combination of the
    ``group_by`` tags, against its seasonal baseline (docs/anomalies.md)."""

    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]
    group_by: list[str] = Field(default_factory=list, max_length=4)
    weeks: Annotated[int, Field(ge=1, le=12)] = 4
    min_weeks: Annotated[int, Field(ge=1, le=12)] = 2
    sensitivity: Annotated[Decimal, Field(gt=0, le=100)] = Decimal(4)
    min_delta_usd: Annotated[Decimal, Field(ge=0, max_digits=30, decimal_places=10)] = Decimal(5)
    min_spread_pct: Annotated[Decimal, Field(ge=0, le=1000)] = Decimal(10)
    unit_cost: bool = True
    unit_cost_min_spread_pct: Annotated[Decimal, Field(ge=0, le=1000)] = Decimal(5)
    resolve_after: Annotated[int, Field(ge=1, le=168)] = 2
    settle: Duration = timedelta(minutes=2)
    channels: list[str] = Field(default_factory=list)
    owner: str = ""

    @field_validator("group_by")
    @classmethod
    def _check_group_by(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if not TAG_KEY_PATTERN.fullmatch(key):
                raise ValueError(f"{key!r} is not a tag name")
        if len(set(keys)) != len(keys):
            raise ValueError("a tag is named twice")
        return keys


def load_anomalies(
    settings: Settings, alerting: Alerting, config_path: str | Path | None = None
) -> tuple[AnomalyRule, ...]:
    """Validate ``settings.anomalies`` (channels against ``[alerts.channels]``, names unique
    and distinct from budget names: both name rows of the alert outbox)."""
    path = resolve_config_path(config_path) if config_path else settings.source
    source = str(path) if path else "environment/defaults"
    problems: list[str] = []
    rules: list[tuple[int, AnomalyRule]] = []
    for index, raw in enumerate(settings.anomalies):
        try:
            rules.append((index, AnomalyRule.model_validate(raw)))
        except ValidationError as exc:
            problems += [
                problem_line(f"anomalies[{index}]", e, ANOMALY_FIXES)
                for e in exc.errors(include_url=False)
            ]
    taken = {b.name for b in alerting.budgets}
    for index, rule in rules:
        if rule.name in taken:
            problems.append(
                f"  anomalies[{index}].name = {rule.name!r}: already names a budget or another "
                f"rule; fix: {ANOMALY_FIXES['name']}"
            )
        taken.add(rule.name)
        if rule.min_weeks > rule.weeks:
            problems.append(
                f"  anomalies[{index}].min_weeks = {rule.min_weeks}: more than weeks = "
                f"{rule.weeks}; fix: {ANOMALY_FIXES['min_weeks']} (at most weeks)"
            )
        for channel in rule.channels:
            if channel not in alerting.alerts.channels:
                listed = ", ".join(alerting.alerts.channels) or "none"
                problems.append(
                    f"  anomalies[{index}].channels = {rule.channels!r}: {channel!r} is not "
                    f"defined; fix: add it under [alerts.channels] (defined: {listed})"
                )
    if problems:
        raise ConfigError("\n".join([f"invalid anomalies configuration in {source}:", *problems]))
    return tuple(rule for _, rule in rules)
