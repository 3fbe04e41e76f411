"""The leadership tables: migration 28 (in the list :mod:`spendstream.worker.schema` assembles).

- ``leader_terms``: one row per term of a named role (``evaluator``, …). A term is claimed by
  inserting its row with the deduplication token ``<name>:<term>``: ClickHouse keeps the first
  insert of a token and silently drops the others, so exactly one claimant's row exists and every
  claimant reads the same winner back. This is the only compare-and-set ClickHouse offers that
  works alike on chDB, a single server (``non_replicated_deduplication_window``) and a cluster
  (Keeper-backed ``replicated_deduplication_window``).
- ``leader_renewals``: the holder's heartbeats (server time), and a ``released`` row on a clean
  stop so a successor need not wait for the lease to expire. Old rows expire after a day.
"""

from __future__ import annotations

from spendstream.sinks.migrations import Migration

TERMS = """
CREATE TABLE IF NOT EXISTS leader_terms (
    name LowCardinality(String),
    term UInt64,
    holder String,
    acquired_at DateTime64(3, 'UTC')
) ENGINE = MergeTree
ORDER BY (name, term)
SETTINGS non_replicated_deduplication_window = 10000
"""

RENEWALS = """
CREATE TABLE IF NOT EXISTS leader_renewals (
    name LowCardinality(String),
    term UInt64,
    holder String,
    renewed_at DateTime64(3, 'UTC'),
    released UInt8
) ENGINE = MergeTree
ORDER BY (name, term, renewed_at)
TTL toDateTime(renewed_at) + INTERVAL 1 DAY
"""

MIGRATIONS: tuple[Migration, ...] = (Migration(28, "leadership", (TERMS, RENEWALS)),)
