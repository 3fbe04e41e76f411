"""Human durations (``90s``, ``5m``, ``2h``, ``1.5d``): parsed from config, flags and query
strings, and written back in their shortest exact spelling. Pure Python, no project imports."""

from __future__ import annotations

import re
from datetime import timedelta

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
