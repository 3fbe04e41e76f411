"""The insights tables: migration 600 (in the list :mod:`spendstream.worker.schema` assembles).

- ``outcomes``: one row per outcome event (``recorder.outcome(...)``), deduplicated by
  ``event_id`` (ReplacingMergeTree; read with ``FINAL``), with the reserved tags as columns.
"""

from __future__ import annotations

from spendstream.sinks.migrations import MONEY, Migration

OUTCOMES = f"""
CREATE TABLE IF NOT EXISTS outcomes (
    event_id String,
    event_time DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC'),
    name LowCardinality(String),
    value {MONEY},
    team LowCardinality(String),
    app LowCardinality(String),
    env LowCardinality(String),
    feature LowCardinality(String),
    user String,
    tags Map(String, String),
    kafka_partition UInt32,
    kafka_offset UInt64
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (toDate(event_time), name, feature, event_id)
SETTINGS non_replicated_deduplication_window = 1000
"""

MIGRATIONS: tuple[Migration, ...] = (Migration(600, "outcomes", (OUTCOMES,)),)
