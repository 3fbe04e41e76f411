"""Budget periods (day, week, month in a time zone) and human durations (``90s``, ``5m``, ``2h``).

All instants are timezone-aware; period bounds are returned in UTC because the ledger stores
``event_time`` in UTC. A week starts on Monday, a day and a month at local midnight.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Period = Literal["day", "week", "month"]

DURATION_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
DURATION_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


def parse_duration(value: str | float | int | timedelta) -> timedelta:
    """``"2h"``, ``"90s"``, ``"1.5d"`` or a number of seconds; raises ValueError otherwise."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    match = DURATION_PATTERN.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration: write e.g. '30s', '5m', '2h', '1d'")
    return float(match.group(1)) * DURATION_UNITS[match.group(2)]


def format_duration(value: timedelta) -> str:
    """The shortest exact ``parse_duration`` spelling of ``value`` (e.g. ``2h``, ``90s``)."""
    seconds = value.total_seconds()
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def period_bounds(period: Period, timezone: str, now: datetime) -> tuple[datetime, datetime]:
    """``[start, end)`` of the ``period`` containing ``now`` in ``timezone``, as UTC instants."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    midnight = datetime(local.year, local.month, local.day)
    if period == "day":
        start, end = midnight, midnight + timedelta(days=1)
    elif period == "week":
        start = midnight - timedelta(days=local.weekday())
        end = start + timedelta(weeks=1)
    else:
        start = datetime(local.year, local.month, 1)
        end = datetime(local.year + local.month // 12, local.month % 12 + 1, 1)
    # Naive local wall times get their zone now, so DST changes inside the period are right.
    return (
        start.replace(tzinfo=zone).astimezone(UTC),
        end.replace(tzinfo=zone).astimezone(UTC),
    )


def period_label(period: Period, timezone: str, start: datetime) -> str:
    """``day 2026-11-28 (Europe/Paris)``, ``week of 2026-11-23 (UTC)``, ``month 2026-11 (UTC)``."""
    local = start.astimezone(ZoneInfo(timezone))
    if period == "day":
        return f"day {local:%Y-%m-%d} ({timezone})"
    if period == "week":
        return f"week of {local:%Y-%m-%d} ({timezone})"
    return f"month {local:%Y-%m} ({timezone})"
