"""Prompt sightings (migration 76): what ``caching``'s repeated prompts and ``embeddings``'
re-embedded content read instead of a window over ``ledger FINAL``.

One row per ledger event that carries a ``prompt_hash`` or is an embedding (the embeddings
insight counts those without a hash too), with the columns those insights group and filter by,
ordered by (provider, model, prompt_hash, event_time, event_id). ``previous_time`` is the
``event_time`` of the same prompt's previous sighting on the same provider and model, in
(event_time, event_id) order, among the events of its :data:`SIGHTING_CLASS` (the events the
insight's window sees: unserved chat calls for ``caching``, embeddings for ``embeddings``), or
:data:`EPOCH` when there is none (or no hash). Over a period and no scope, an event's previous
sighting inside the period is this one when ``previous_time >= since``, and none otherwise: the
windows' ``lagInFrame`` and ``row_number`` become a filter on two columns.

Kept in step by the ledger writer (``sinks.ledger.REFRESH_STEPS``, a minute step,
:data:`REFRESH_SIGHTINGS`): the touched minutes' rows come again from ``ledger FINAL``, and
every sighting of the prompts they carry is recomputed with them (a lookup on the sort key);
rows whose ``previous_time`` is unchanged are not written again. The table is a
ReplacingMergeTree(computed_at), read with ``FINAL``. The key assumes what the ledger's
deduplication does: an event id sent again is the same event (same time, provider, model and
prompt).
"""

from __future__ import annotations

from spendstream.sinks.migrations import MONEY, Migration

SIGHTINGS_TABLE = "prompt_sightings"
SIGHTING_COLUMNS: tuple[tuple[str, str], ...] = (
    ("provider", "LowCardinality(String)"),
    ("model", "LowCardinality(String)"),
    ("prompt_hash", "String"),
    ("event_time", "DateTime64(3, 'UTC')"),
    ("event_id", "String"),
    ("team", "LowCardinality(String)"),
    ("feature", "LowCardinality(String)"),
    ("operation", "LowCardinality(String)"),
    ("batch", "Bool"),
    ("priced", "Bool"),
    ("response_cached", "Bool"),
    ("input_tokens", "UInt64"),
    ("output_tokens", "UInt64"),
    ("cache_read_tokens", "UInt64"),
    ("cache_write_tokens", "UInt64"),
    ("cost_total", MONEY),
)
NAMES = ", ".join(name for name, _kind in SIGHTING_COLUMNS)
EPOCH = "toDateTime64('1970-01-01 00:00:00', 3, 'UTC')"
# The ledger rows kept: those with a prompt, and every embedding.
SIGHTED = "(prompt_hash != '' OR operation = 'embeddings')"
# Which events see each other: caching's unserved chat calls, embeddings, the rest.
SIGHTING_CLASS = "multiIf(operation = 'embeddings', 1, priced AND NOT response_cached, 2, 3)"


def previous_sighting(*within: str) -> str:
    """The previous sighting's time of the same prompt and class (and of the same ``within``
    columns: the team repeats pass ``team``), the epoch for none."""
    partition = ", ".join(("provider", "model", "prompt_hash", SIGHTING_CLASS, *within))
    return (
        f"if(prompt_hash = '', {EPOCH}, lagInFrame(event_time, 1, {EPOCH}) OVER (PARTITION BY "
        f"{partition} ORDER BY event_time, event_id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW))"
    )


PREVIOUS = previous_sighting()

CREATE_SIGHTINGS = (
    f"CREATE TABLE IF NOT EXISTS {SIGHTINGS_TABLE} (\n    "
    + ",\n    ".join(f"{name} {kind}" for name, kind in SIGHTING_COLUMNS)
    + ",\n    previous_time DateTime64(3, 'UTC'),\n    computed_at DateTime64(6, 'UTC')\n"
    ") ENGINE = ReplacingMergeTree(computed_at)\n"
    "ORDER BY (provider, model, prompt_hash, event_time, event_id)\n"
    # A batch looks up the sightings of its prompts by key: small granules read fewer rows
    # (8,192 rows a prompt at the default; measured in docs/benchmarks-insights.md).
    "SETTINGS index_granularity = 1024"
)
_INSERT = f"INSERT INTO {SIGHTINGS_TABLE} ({NAMES}, previous_time, computed_at) "
# Migration 76 fills the table from the whole ledger once (re-runnable: same keys, FINAL).
BACKFILL_SIGHTINGS = (
    f"{_INSERT}SELECT {NAMES}, {PREVIOUS}, now64(6) FROM ledger FINAL WHERE {SIGHTED}"
)
TOUCHED = (
    "event_time >= {lo:DateTime64(3)} AND event_time < {hi:DateTime64(3)} "
    "AND toDateTime(toStartOfMinute(event_time)) IN {starts:Array(DateTime)}"
)
# Written again: the touched minutes' rows (stored = NULL) and sightings whose previous moved.
REFRESH_SIGHTINGS = (
    f"{_INSERT}SELECT {NAMES}, previous, now64(6) FROM ("
    f"SELECT {NAMES}, stored, {PREVIOUS} AS previous FROM ("
    f"SELECT {NAMES}, CAST(NULL AS Nullable(DateTime64(3, 'UTC'))) AS stored "
    f"FROM ledger FINAL WHERE {TOUCHED} AND {SIGHTED} "
    f"UNION ALL SELECT {NAMES}, previous_time AS stored FROM {SIGHTINGS_TABLE} FINAL "
    "WHERE prompt_hash != '' AND (provider, model, prompt_hash) IN (SELECT provider, model, "
    f"prompt_hash FROM ledger WHERE {TOUCHED} AND prompt_hash != '') AND NOT ({TOUCHED}))"
    ") WHERE stored IS NULL OR stored != previous"
)
"""The prompts a batch's minutes carry, recomputed (a ``REFRESH_STEPS`` step of unit minute:
parameters ``starts``, ``lo``, ``hi``)."""

# The repeats (migration 77): the sightings the insights read, a few percent of them. Every
# embedding with a prompt (re-embeddings count whatever the gap), and every other sighting whose
# previous one is at most REPEAT_HORIZON_S earlier: caching's windows up to that long read this
# table instead of filtering every sighting. A sighting that was within the horizon and no longer
# is (a late event came between, a re-rating changed its class) is written again as it is now,
# so FINAL keeps the newer row, which the window filter then drops.
REPEATS_TABLE = "prompt_repeats"
REPEAT_HORIZON_S = 3_600
KEY = "provider, model, prompt_hash, event_time, event_id"


def repeated(previous: str) -> str:
    """Whether a sighting belongs in the repeats, given the column with its previous one's time."""
    return (
        "prompt_hash != '' AND (operation = 'embeddings' "
        f"OR {previous} >= event_time - toIntervalSecond({REPEAT_HORIZON_S}))"
    )


REPEATED = repeated("previous_time")
CREATE_REPEATS = CREATE_SIGHTINGS.replace(SIGHTINGS_TABLE, REPEATS_TABLE, 1)
_INSERT_REPEATS = f"INSERT INTO {REPEATS_TABLE} ({NAMES}, previous_time, computed_at) "
BACKFILL_REPEATS = (
    f"{_INSERT_REPEATS}SELECT {NAMES}, previous_time, now64(6) "
    f"FROM {SIGHTINGS_TABLE} FINAL WHERE {REPEATED}"
)
# The prompts a batch's minutes carry (the refresh steps' parameters).
TOUCHED_PROMPTS = (
    f"(provider, model, prompt_hash) IN (SELECT provider, model, prompt_hash FROM ledger "
    f"WHERE {TOUCHED} AND prompt_hash != '')"
)
# After REFRESH_SIGHTINGS: the sightings of the touched minutes' prompts that repeat, or that
# the repeats hold (however they are now), written again from the refreshed sightings.
REFRESH_REPEATS = (
    f"{_INSERT_REPEATS}SELECT {NAMES}, previous_time, now64(6) FROM {SIGHTINGS_TABLE} FINAL "
    f"WHERE prompt_hash != '' AND {TOUCHED_PROMPTS} AND ({REPEATED} OR ({KEY}) IN "
    f"(SELECT {KEY} FROM {REPEATS_TABLE} WHERE {TOUCHED_PROMPTS}))"
)
"""The repeats of the prompts a batch's minutes carry (a ``REFRESH_STEPS`` step after
:data:`REFRESH_SIGHTINGS`, same parameters)."""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(76, "prompt_sightings", (CREATE_SIGHTINGS, BACKFILL_SIGHTINGS)),
    Migration(77, "prompt_repeats", (CREATE_REPEATS, BACKFILL_REPEATS)),
)
