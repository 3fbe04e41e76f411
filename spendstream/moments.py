"""The moments a caller may name (query periods, expiries, rate days) and their one parser.

Every time spendstream stores or queries lies in ``[EARLIEST, LATEST)``: the range in which the
ledger (DateTime64), the rollups (DateTime, which ends in 2106) and ``fx_rates`` (Date, which ends
in 2149) all hold it, so no date arithmetic downstream can overflow and ClickHouse never refuses a
parameter. A time outside it is the caller's mistake (ValueError saying the range), never a 500.
Pure Python (the CLI's quick path imports it): no project imports but :mod:`durations`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from spendstream.durations import DURATION_PATTERN, SPAN_END, SPAN_START, parse_duration

EARLIEST = SPAN_START
LATEST = SPAN_END
RANGE_TEXT = f"{EARLIEST:%Y-%m-%dT%H:%M:%SZ} to {LATEST:%Y-%m-%dT%H:%M:%SZ}"


def out_of_range(shown: str) -> ValueError:
    return ValueError(f"{shown[:40]} is outside the supported range {RANGE_TEXT}")


def bounded(moment: datetime, shown: str | None = None) -> datetime:
    """``moment`` as UTC (UTC when it names no zone) if in range; ValueError otherwise."""
    try:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
        raise out_of_range(shown or moment.isoformat()) from None
    if EARLIEST <= moment < LATEST:
        return moment
    raise out_of_range(shown or moment.isoformat())


def bounded_day(day: date) -> date:
    """``day`` if its midnight is in range; ValueError otherwise."""
    if EARLIEST.date() <= day < LATEST.date():
        return day
    raise out_of_range(day.isoformat())


def shifted(now: datetime, duration: timedelta, shown: str | None = None) -> datetime:
    """``now + duration`` (negative: back) within the range; ValueError otherwise."""
    try:
        moment = now + duration
    except OverflowError:
        raise out_of_range(shown or str(duration)) from None
    return bounded(moment, shown)


def after(now: datetime, duration: str | timedelta) -> datetime:
    """When something lasting ``duration`` from ``now`` ends (an expiry), within the range."""
    length = parse_duration(duration)
    return shifted(now, length, f"now + {duration}" if isinstance(duration, str) else None)


def parse_moment(text: str, now: datetime | None = None) -> datetime:
    """ISO 8601 (zone-less means UTC), ``now``, or a duration ago (``30m``, ``7d``), as UTC within
    the range; ValueError saying what is accepted otherwise."""
    now = now or datetime.now(UTC)
    text = text.strip()
    if text == "now":
        return now
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        if DURATION_PATTERN.match(text) is None:
            raise ValueError(
                f"{text[:40]!r} is not a time: use ISO 8601 (2026-11-01T12:00Z), 'now' or "
                "30m/24h/7d"
            ) from None
        return shifted(now, -parse_duration(text), f"{text[:40]} ago")  # too long: its reason
    return bounded(moment, text)


def check_period(start: datetime, end: datetime) -> None:
    """ValueError unless ``[start, end)`` is a period (start before end)."""
    if start >= end:
        raise ValueError(
            f"since ({start.isoformat()}) must come before until ({end.isoformat()}): "
            "the period is empty"
        )


def parse_period(since: str, until: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """``since`` and ``until`` (:func:`parse_moment`) as a non-empty period; ValueError naming
    the parameter otherwise."""
    now = now or datetime.now(UTC)
    start, end = (
        parse_named(text, name, now) for text, name in ((since, "since"), (until, "until"))
    )
    check_period(start, end)
    return start, end


def parse_named(text: str, name: str, now: datetime | None = None) -> datetime:
    """:func:`parse_moment` with the parameter's name in the refusal (``since: ...``)."""
    try:
        return parse_moment(text, now)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
