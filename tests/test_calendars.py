"""Quarter and fiscal-year periods: bounds in two time zones across DST, labels, and config."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from spendstream.alerts.config import load_alerting
from spendstream.config import ConfigError, Settings
from spendstream.periods import period_bounds, period_label
from spendstream.quotas.config import load_quotas, quota_bounds

ZONES = ("Europe/Paris", "America/New_York")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# (zone, instant) -> the local midnight (UTC) that starts and ends its quarter, fiscal year
# starting in April. Paris: CET +1 in winter, CEST +2 from the last Sunday of March (29 March
# 2026) to the last Sunday of October (25 October 2026). New York: EST -5, EDT -4 from
# 8 March to 1 November 2026. Each bound was worked out by hand from those offsets.
QUARTERS_FROM_APRIL = [
    # 1 April 00:30 Paris (CEST) is 31 March 22:30 UTC: already Q1 of FY2027
    ("Europe/Paris", utc(2026, 3, 31, 22, 30), utc(2026, 3, 31, 22), utc(2026, 6, 30, 22)),
    # 31 March 23:59 Paris is 21:59 UTC: still Q4 of FY2026, which started in CET on 1 January
    ("Europe/Paris", utc(2026, 3, 31, 21, 59), utc(2025, 12, 31, 23), utc(2026, 3, 31, 22)),
    # Q3 (October to December) starts in CEST and ends in CET: its bounds have different offsets
    ("Europe/Paris", utc(2026, 11, 15), utc(2026, 9, 30, 22), utc(2026, 12, 31, 23)),
    # 1 April 02:00 UTC is 31 March 22:00 in New York (EDT): still Q4 FY2026
    ("America/New_York", utc(2026, 4, 1, 2), utc(2026, 1, 1, 5), utc(2026, 4, 1, 4)),
    ("America/New_York", utc(2026, 4, 1, 4), utc(2026, 4, 1, 4), utc(2026, 7, 1, 4)),
    ("America/New_York", utc(2026, 12, 31, 12), utc(2026, 10, 1, 4), utc(2027, 1, 1, 5)),
]


@pytest.mark.parametrize(("zone", "now", "start", "end"), QUARTERS_FROM_APRIL)
def test_fiscal_quarter_bounds_across_dst(
    zone: str, now: datetime, start: datetime, end: datetime
) -> None:
    assert period_bounds("quarter", zone, now, first_month=4) == (start, end)


def test_fiscal_year_bounds_in_two_zones() -> None:
    # Fiscal year from April: the same local instant, two zones, two DST regimes.
    assert period_bounds("year", "Europe/Paris", utc(2026, 3, 31, 22), 4) == (
        utc(2026, 3, 31, 22),
        utc(2027, 3, 31, 22),
    )
    assert period_bounds("year", "Europe/Paris", utc(2026, 3, 31, 21, 59), 4) == (
        utc(2025, 3, 31, 22),
        utc(2026, 3, 31, 22),
    )
    # New York's year from October starts and ends in EDT (04:00 UTC), though it spans EST.
    start, end = period_bounds("year", "America/New_York", utc(2027, 2, 1), 10)
    assert (start, end) == (utc(2026, 10, 1, 4), utc(2027, 10, 1, 4))
    # A calendar year (first_month 1) across both DST changes: 365 days of 24 h exactly.
    start, end = period_bounds("year", "America/New_York", utc(2026, 7, 1), 1)
    assert (start, end) == (utc(2026, 1, 1, 5), utc(2027, 1, 1, 5))
    assert end - start == timedelta(days=365)


def test_quarters_tile_the_fiscal_year() -> None:
    for zone in ZONES:
        year_start, year_end = period_bounds("year", zone, utc(2026, 8, 1), 11)
        moment, quarters = year_start, []
        while moment < year_end:
            quarters.append(period_bounds("quarter", zone, moment, 11))
            moment = quarters[-1][1]
        assert len(quarters) == 4 and quarters[0][0] == year_start
        assert all(a[1] == b[0] for a, b in pairwise(quarters))


def test_labels_name_quarter_and_fiscal_year() -> None:
    start = utc(2026, 3, 31, 22)
    assert period_label("quarter", "Europe/Paris", start, 4) == (
        "quarter Q1 FY2027 (2026-04 to 2026-06, Europe/Paris)"
    )
    assert period_label("year", "Europe/Paris", start, 4) == (
        "year FY2027 (2026-04 to 2027-03, Europe/Paris)"
    )
    assert period_label("quarter", "UTC", utc(2026, 10, 1), 1) == (
        "quarter Q4 2026 (2026-10 to 2026-12, UTC)"
    )
    # From November: February to April is the second quarter of FY2026 (Nov 2025 - Oct 2026).
    assert period_label("quarter", "UTC", utc(2026, 2, 1), 11).startswith("quarter Q2 FY2026")


def test_budgets_and_quotas_take_the_calendar() -> None:
    settings = Settings(
        budgets=[
            {
                "name": "fy",
                "limit": "90000",
                "period": "quarter",
                "fiscal_year_start": 4,
                "timezone": "Europe/Paris",
                "block_at": 100,
            }
        ],
        quotas=[{"name": "yearly", "requests": 10, "per": "year", "fiscal_year_start": 7}],
    )
    (budget,) = load_alerting(settings).budgets
    assert budget.period == "quarter" and budget.fiscal_year_start == 4
    quotas = {q.name: q for q in load_quotas(settings).quotas}
    # the budget's block_at quota keeps its calendar
    assert quotas["fy"].bounds(utc(2026, 5, 1)) == (utc(2026, 3, 31, 22), utc(2026, 6, 30, 22))
    assert quotas["yearly"].bounds(utc(2026, 5, 1)) == (utc(2025, 7, 1), utc(2026, 7, 1))
    assert quota_bounds("quarter", "UTC", utc(2026, 5, 1)) == (utc(2026, 4, 1), utc(2026, 7, 1))
    assert quotas["yearly"].label(utc(2025, 7, 1)).startswith("year FY2026")


def test_bad_fiscal_year_start_names_key_and_fix() -> None:
    settings = Settings(budgets=[{"name": "b", "limit": "1", "fiscal_year_start": 13}])
    with pytest.raises(ConfigError) as error:
        load_alerting(settings)
    text = str(error.value)
    assert "budgets[0].fiscal_year_start = 13" in text
    assert "fix: the first month of the fiscal year, 1 to 12" in text
