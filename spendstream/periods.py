"""Calendar periods (day, week, month, quarter, year in a time zone) and the instants people
read.

All instants are timezone-aware; period bounds are returned in UTC because the ledger stores
``event_time`` in UTC. A week starts on Monday, a day and a month at local midnight. Quarters
and years follow a fiscal calendar whose year starts on the first day of ``first_month``
(1 = January: calendar quarters and years); a fiscal year is named after the calendar year
it ends in (``first_month = 4``: FY2027 runs from April 2026 to March 2027).
Shared by budgets, quotas, the dashboard and notifications; pure Python.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Period = Literal["day", "week", "month", "quarter", "year"]
# Months per period for the periods counted in whole months.
PERIOD_MONTHS = {"month": 1, "quarter": 3, "year": 12}


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """``2026-11-28 14:05 UTC`` (minutes; the zone is always written)."""
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def month_span(
    size: int, first_month: int, year: int, month: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((year, month), (year, month))``: the first month of the ``size``-month period
    containing ``year-month`` when periods start at ``first_month``, and the month after it."""
    index = year * 12 + month - 1
    start = index - (index - (first_month - 1)) % size
    end = start + size
    return (start // 12, start % 12 + 1), (end // 12, end % 12 + 1)


def period_bounds(
    period: Period, timezone: str, now: datetime, first_month: int = 1
) -> tuple[datetime, datetime]:
    """``[start, end)`` of the ``period`` containing ``now`` in ``timezone``, as UTC instants
    (quarters and years start in ``first_month``)."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    midnight = datetime(local.year, local.month, local.day)
    if period == "day":
        start, end = midnight, midnight + timedelta(days=1)
    elif period == "week":
        start = midnight - timedelta(days=local.weekday())
        end = start + timedelta(weeks=1)
    else:
        first = first_month if period != "month" else 1
        (y0, m0), (y1, m1) = month_span(PERIOD_MONTHS[period], first, local.year, local.month)
        start, end = datetime(y0, m0, 1), datetime(y1, m1, 1)
    # Naive local wall times get their zone now, so DST changes inside the period are right.
    return (
        start.replace(tzinfo=zone).astimezone(UTC),
        end.replace(tzinfo=zone).astimezone(UTC),
    )


def period_label(period: Period, timezone: str, start: datetime, first_month: int = 1) -> str:
    """``day 2026-11-28 (Europe/Paris)``, ``week of 2026-11-23 (UTC)``, ``month 2026-11 (UTC)``,
    ``quarter Q1 FY2027 (2026-04 to 2026-06, UTC)``, ``year 2026 (UTC)``."""
    local = start.astimezone(ZoneInfo(timezone))
    if period == "day":
        return f"day {local:%Y-%m-%d} ({timezone})"
    if period == "week":
        return f"week of {local:%Y-%m-%d} ({timezone})"
    if period == "month":
        return f"month {local:%Y-%m} ({timezone})"
    size = PERIOD_MONTHS[period]
    (y0, m0), (y1, m1) = month_span(size, first_month, local.year, local.month)
    last_year, last_month = (y1, m1 - 1) if m1 > 1 else (y1 - 1, 12)
    # the fiscal year containing this period, named after the calendar year it ends in
    (_, _), (fy_end, fy_end_month) = month_span(12, first_month, y0, m0)
    fiscal = fy_end if fy_end_month > 1 else fy_end - 1
    year = f"FY{fiscal}" if first_month != 1 else f"{fiscal}"
    span = f"{y0}-{m0:02d} to {last_year}-{last_month:02d}, {timezone}"
    if period == "year":
        return f"year {year} ({span})"
    quarter = ((y0 * 12 + m0 - 1) - (first_month - 1)) % 12 // 3 + 1
    return f"quarter Q{quarter} {year} ({span})"
