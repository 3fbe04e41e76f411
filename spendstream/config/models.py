"""Base classes and field types for the rule sections (``[[budgets]]``, ``[[quotas]]``,
``[alerts]``…), which pydantic validates after the settings are loaded.

- :class:`Strict`: frozen, unknown keys rejected; :class:`Scoped`: a scope of tag filters and a
  time zone (budgets, quotas).
- :data:`Duration` (``"5m"``; :data:`SpelledDuration` serialises back to ``"5m"``),
  :data:`Money` (positive USD), :data:`Percent` (0 to 100).
- :func:`problem_line`: one validation error as a line naming the key, the value and the fix.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
)

from spendstream.durations import DURATION_PATTERN, format_duration, parse_duration
from spendstream.matching import Scope
from spendstream.redaction import redact_url
from spendstream.tag_keys import TAG_KEY_PATTERN

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
# A duration an operator's request carries (silences, overrides): written back as it is spelt,
# and advertised as what it accepts (not pydantic's ISO 8601 "PT1H", which it refuses).
SpelledDuration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN.pattern,
            "examples": ["30m", "2h", "7d"],
            "description": "a number and a unit: ms, s, m, h, d or w (e.g. 2h)",
        }
    ),
]
Money = Annotated[Decimal, Field(gt=0, max_digits=30, decimal_places=10)]
Percent = Annotated[Decimal, Field(ge=0, le=100)]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scoped(Strict):
    """A scope of tag filters and a calendar (shared by budgets and quotas): the time zone
    periods reset in, and the month fiscal quarters and years start in."""

    scope: dict[str, str | list[str]] = Field(default_factory=dict)
    timezone: str = "UTC"
    fiscal_year_start: Annotated[int, Field(ge=1, le=12)] = 1

    @field_validator("scope")
    @classmethod
    def _check_scope(cls, scope: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        for key, value in scope.items():
            if not TAG_KEY_PATTERN.fullmatch(key):
                raise ValueError(f"scope key {key!r} is not a tag name")
            if value == [] or value == "":
                raise ValueError(f"scope.{key} is empty")
        return scope

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r}") from None
        return zone

    @property
    def scope_filters(self) -> Scope:
        return {
            key: (value,) if isinstance(value, str) else tuple(value)
            for key, value in sorted(self.scope.items())
        }


def problem_line(prefix: str, error: Any, fixes: dict[str, str]) -> str:
    """One validation error as ``  key = value: message; fix: …`` (``fixes`` per field)."""
    loc = [str(part) for part in error["loc"]]
    key = prefix + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in loc)
    field = next((p for p in loc if p in fixes), "")
    value = error.get("input")
    if isinstance(value, str) and "://" in value:
        value = redact_url(value)
    shown = "" if isinstance(value, dict) and error["type"] != "missing" else f" = {value!r}"
    if error["type"] == "missing":
        shown = " is missing"
    elif error["type"] == "extra_forbidden":
        return f"  {key}: unknown key; remove it or check its spelling"
    fix = f"; fix: {fixes[field]}" if field else ""
    return f"  {key}{shown}: {error['msg']}{fix}"
