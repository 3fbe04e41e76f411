"""Repeated prompts from the prompt sightings (``sinks.prompt_sightings``, migration 76).

``caching``'s repeats and ``embeddings``' re-embeddings number each event by its previous
sighting inside the period (a window over ``ledger FINAL``); the sightings table keeps each
event's previous sighting over all time, and over a period that sighting is inside it exactly
when ``previous_time >= since``. That holds while the window sees every event of the prompt in
the period: no scope but provider and model (the table's partition), no team condition.
:func:`sighting_rows` returns None otherwise (the caller reads the ledger).
"""

from __future__ import annotations

from typing import Any

from spendstream.insights.base import Context
from spendstream.sinks.prompt_sightings import REPEATS_TABLE, SIGHTINGS_TABLE

# Scope keys that keep every sighting a prompt's window sees: its partition.
SCOPE_KEYS = ("provider", "model")
# The previous sighting is inside the period (the window's lag would find it).
IN_PERIOD = "previous_time >= {since:DateTime64(3)}"
SOURCE = f"{SIGHTINGS_TABLE} FINAL"
# The few sightings that repeat within the horizon, and every embedding with a prompt.
REPEATS = f"{REPEATS_TABLE} FINAL"


def sighting_rows(
    context: Context, sql: str, extra: dict[str, Any] | None = None
) -> list[dict[str, Any]] | None:
    """Run ``sql`` (reading the sightings, with ``{where}``) over the context's window; rows
    as dicts, or None when the sightings cannot answer (see the module doc)."""
    window = context.window
    if context.from_ledger or window.team_sql.strip() != "1":
        return None
    if not {key for key, _ in window.scope} <= set(SCOPE_KEYS):
        return None
    return context.rows(sql, extra)
