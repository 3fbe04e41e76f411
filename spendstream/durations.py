"""Human durations (``90s``, ``5m``, ``2h``, ``1.5d``): parsed from config, flags and query
strings, and written back in their shortest exact spelling. Pure Python, no project imports."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

DURATION_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
DURATION_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
# The span of the times spendstream holds, defined here once (spendstream.moments names them
# EARLIEST and LATEST and imports this module; it cannot import moments). No duration is longer:
# past 47,482 days date arithmetic overflows or leaves the range.
SPAN_START = datetime(1970, 1, 1, tzinfo=UTC)
SPAN_END = datetime(2100, 1, 1, tzinfo=UTC)
LONGEST = SPAN_END - SPAN_START


def parse_duration(value: str | float | int | timedelta) -> timedelta:
    """``"2h"``, ``"90s"``, ``"1.5d"`` or a number of seconds, at most :data:`LONGEST`; raises
    ValueError otherwise (never OverflowError: ``1000000000d`` is a caller's mistake)."""
    if isinstance(value, timedelta):
        length = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        length = _length(lambda: timedelta(seconds=value), value)
    else:
        match = DURATION_PATTERN.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration: write e.g. '30s', '5m', '2h', '1d'")
        unit = DURATION_UNITS[match.group(2)]
        length = _length(lambda: float(match.group(1)) * unit, value)
    if abs(length) > LONGEST:
        raise _too_long(value)
    return length


def _length(compute: Callable[[], timedelta], value: object) -> timedelta:
    try:
        return compute()
    except (OverflowError, ValueError):  # past timedelta's range, or an infinite float
        raise _too_long(value) from None


def _too_long(value: object) -> ValueError:
    return ValueError(
        f"{str(value)[:40]!r} is longer than spendstream supports: at most "
        f"{LONGEST.days}d (the span of {SPAN_START.year} to {SPAN_END.year})"
    )


def format_duration(value: timedelta) -> str:
    """The shortest exact ``parse_duration`` spelling of ``value`` (e.g. ``2h``, ``90s``)."""
    seconds = value.total_seconds()
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
