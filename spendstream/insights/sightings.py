"""Repeated prompts from the prompt sightings (``sinks.prompt_sightings``, migration 76).

``caching``'s repeats and ``embeddings``' re-embeddings number each event by its previous
sighting inside the period (a window over ``ledger FINAL``); the sightings table keeps each
event's previous sighting over all time, and over a period that sighting is inside it exactly
when ``previous_time >= since``. That holds while the window sees every event of the prompt in
the period: no scope but provider and model (the table's partition), no team condition.
:func:`sighting_rows` returns None otherwise. A scope on a team or feature (or a team
condition) still reads a window, over the sightings instead of the ledger
(:func:`scoped_rows`): the previous sighting inside the scope is never later than the one
overall, so only the prompts with an in-scope sighting whose previous one overall is close
enough can repeat, and the window reads those prompts' sightings alone. A scope that fixes the
team (with perhaps provider and model) reads the team repeats instead (``sinks.team_repeats``,
migration 71: each sighting's previous one in the same team), a filter again
(:func:`team_rows`). Scopes naming app, env, user or a tag read the ledger.
"""

from __future__ import annotations

from typing import Any

from spendstream.insights.base import Context
from spendstream.sinks.prompt_sightings import REPEATS_TABLE, SIGHTINGS_TABLE
from spendstream.sinks.team_repeats import TEAM_REPEATS_TABLE

# Scope keys that keep every sighting a prompt's window sees: its partition.
SCOPE_KEYS = ("provider", "model")
# Scope keys the sightings keep as columns: a window over the sightings can take them.
SCOPED_KEYS = ("team", "feature", "provider", "model", "operation")
# The previous sighting is inside the period (the window's lag would find it).
IN_PERIOD = "previous_time >= {since:DateTime64(3)}"
SOURCE = f"{SIGHTINGS_TABLE} FINAL"
# The few sightings that repeat within the horizon, and every embedding with a prompt.
REPEATS = f"{REPEATS_TABLE} FINAL"
# The same per team: each sighting's previous one in its own team.
TEAM_REPEATS = f"{TEAM_REPEATS_TABLE} FINAL"
# Scope keys that keep every sighting of a team's prompt its window sees, once the team is fixed.
TEAM_SCOPE_KEYS = ("team", *SCOPE_KEYS)


def scoped_rows(
    context: Context, sql: str, extra: dict[str, Any] | None = None
) -> list[dict[str, Any]] | None:
    """Run ``sql`` (reading the sightings, with ``{where}``) when the scope names only columns
    the sightings keep (:data:`SCOPED_KEYS`, the team condition on ``team``); None otherwise."""
    if context.from_ledger or not {key for key, _ in context.window.scope} <= set(SCOPED_KEYS):
        return None
    return context.rows(sql, extra)


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


def team_rows(
    context: Context, sql: str, extra: dict[str, Any] | None = None
) -> list[dict[str, Any]] | None:
    """Run ``sql`` (reading the team repeats, with ``{where}``) when the scope fixes the team
    and names nothing but :data:`TEAM_SCOPE_KEYS` (a team condition then only keeps or drops
    that team's rows); None otherwise."""
    keys = {key for key, _ in context.window.scope}
    if context.from_ledger or "team" not in keys or not keys <= set(TEAM_SCOPE_KEYS):
        return None
    return context.rows(sql, extra)
