"""Team repeats (migration 71): the repeats of ``sinks.prompt_sightings`` within one team.

A scope on a team changes which sighting comes before an event: ``caching``'s and
``embeddings``' windows partition by prompt inside the scope, so an event's previous sighting is
the same team's previous one (never later than the previous one overall). Without this table a
team-scoped read ran a window over the sightings of every prompt that repeats somewhere (on the
kept 10 M-event ledger, almost all of them). This table keeps, per event, the ``event_time`` of
the same prompt's previous sighting on the same provider and model, in the same
:data:`~spendstream.sinks.prompt_sightings.SIGHTING_CLASS` **and the same team**
(``previous_time``), for the same rows as the repeats: every embedding with a prompt, and every
other sighting whose previous same-team one is at most ``REPEAT_HORIZON_S`` earlier. Over a
period and a scope that fixes the team (and perhaps provider and model, the rest of the
partition), an event's previous sighting inside the scope and period is this one when
``previous_time >= since``: the team-scoped windows become the repeats' filter.

Migration 71 fills it from ``ledger FINAL`` (it runs before migration 76 creates the sightings on
a fresh ledger); the ledger writer keeps it in step after the sightings
(:data:`REFRESH_TEAM_REPEATS`, a minute step like ``REFRESH_REPEATS``): the sightings of the
touched minutes' prompts, numbered again per team, written when they repeat or when the table
holds them (so a sighting that stopped repeating is replaced by its current row, which the
read's filter drops). Ordered by team first: a scoped read is a range of the key.
"""

from __future__ import annotations

from spendstream.sinks.migrations import Migration
from spendstream.sinks.prompt_sightings import (
    CREATE_SIGHTINGS,
    KEY,
    NAMES,
    SIGHTED,
    SIGHTINGS_TABLE,
    TOUCHED_PROMPTS,
    previous_sighting,
    repeated,
)

TEAM_REPEATS_TABLE = "prompt_team_repeats"
CREATE_TEAM_REPEATS = CREATE_SIGHTINGS.replace(SIGHTINGS_TABLE, TEAM_REPEATS_TABLE, 1).replace(
    "ORDER BY (provider,", "ORDER BY (team, provider,", 1
)
TEAM_PREVIOUS = previous_sighting("team")
TEAM_REPEATED = repeated("team_previous")
_INSERT = f"INSERT INTO {TEAM_REPEATS_TABLE} ({NAMES}, previous_time, computed_at) "
BACKFILL_TEAM_REPEATS = (
    f"{_INSERT}SELECT {NAMES}, team_previous, now64(6) FROM (SELECT {NAMES}, "
    f"{TEAM_PREVIOUS} AS team_previous FROM ledger FINAL WHERE {SIGHTED} AND prompt_hash != '') "
    f"WHERE {TEAM_REPEATED}"
)
REFRESH_TEAM_REPEATS = (
    f"{_INSERT}SELECT {NAMES}, team_previous, now64(6) FROM (SELECT {NAMES}, "
    f"{TEAM_PREVIOUS} AS team_previous FROM {SIGHTINGS_TABLE} FINAL "
    f"WHERE prompt_hash != '' AND {TOUCHED_PROMPTS}) WHERE {TEAM_REPEATED} OR ({KEY}) IN "
    f"(SELECT {KEY} FROM {TEAM_REPEATS_TABLE} WHERE {TOUCHED_PROMPTS})"
)
"""The team repeats of the prompts a batch's minutes carry (a ``REFRESH_STEPS`` step after
``REFRESH_SIGHTINGS``, parameters ``starts``, ``lo``, ``hi``)."""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(71, "prompt_team_repeats", (CREATE_TEAM_REPEATS, BACKFILL_TEAM_REPEATS)),
)
