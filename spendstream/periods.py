"""Calendar periods (day, week, month in a time zone) and the instants people read.

All instants are timezone-aware; period bounds are returned in UTC because the ledger stores
``event_time`` in UTC. A week starts on Monday, a day and a month at local midnight.
Shared by budgets, quotas, the dashboard and notifications; pure Python.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Period = Literal["day", "week", "month"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """``2026-11-28 14:05 UTC`` (minutes; the zone is always written)."""
    return f"{moment:%Y-%m-%d %H:%M} UTC"


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
