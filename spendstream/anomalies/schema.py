"""The anomaly tables: migration 1000 (new tables only; nothing existing changes) and 1002
(``anomaly_episodes.signal``, default ``spend``: what the rows before it were), 1003
(``anomaly_rule_actions``: the audit log of rule silences).

- ``anomaly_episodes``: one row per episode, written by the detector only
  (ReplacingMergeTree on ``version``, read with ``FINAL``: an update is a newer row). The
  opening insert carries a deduplication token, so a repeated opening is dropped.
- ``anomaly_actions``: the audit log of people's state changes (append-only MergeTree).
"""

from __future__ import annotations

from spendstream.sinks.migrations import MONEY, Migration

TIME = "DateTime64(3, 'UTC')"

EPISODES = f"""
CREATE TABLE IF NOT EXISTS anomaly_episodes (
    episode_id String,
    rule String,
    group_keys Array(String),
    group_values Array(String),
    teams Array(String),
    started_at {TIME},
    last_anomalous_at {TIME},
    ended_at Nullable({TIME}),
    expected_usd {MONEY},
    observed_usd {MONEY},
    peak_delta_usd {MONEY},
    method LowCardinality(String),
    drivers Array(String),
    detected_at {TIME},
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY episode_id
SETTINGS non_replicated_deduplication_window = 1000
"""

ACTIONS = f"""
CREATE TABLE IF NOT EXISTS anomaly_actions (
    episode_id String,
    state LowCardinality(String),
    previous_state LowCardinality(String),
    actor String,
    role LowCardinality(String),
    reason String,
    at {TIME}
) ENGINE = MergeTree
ORDER BY (episode_id, at)
"""

EPISODE_COLUMNS = (
    "episode_id",
    "rule",
    "group_keys",
    "group_values",
    "teams",
    "started_at",
    "last_anomalous_at",
    "ended_at",
    "expected_usd",
    "observed_usd",
    "peak_delta_usd",
    "method",
    "drivers",
    "detected_at",
    "version",
    "signal",
)
ACTION_COLUMNS = ("episode_id", "state", "previous_state", "actor", "role", "reason", "at")

# What opened an episode: spend, or its cost per token (spendstream.anomalies.signals).
SIGNAL = (
    "ALTER TABLE anomaly_episodes ADD COLUMN IF NOT EXISTS "
    "signal LowCardinality(String) DEFAULT 'spend'"
)

# The audit log of silences and unsilences of anomaly rules (spendstream.anomalies.silences).
RULE_ACTIONS = f"""
CREATE TABLE IF NOT EXISTS anomaly_rule_actions (
    rule String,
    action LowCardinality(String),
    until {TIME},
    actor String,
    role LowCardinality(String),
    reason String,
    at {TIME}
) ENGINE = MergeTree
ORDER BY (rule, at)
"""
RULE_ACTION_COLUMNS = ("rule", "action", "until", "actor", "role", "reason", "at")

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1000, "anomalies", (EPISODES, ACTIONS)),
    Migration(1002, "anomaly_signal", (SIGNAL,)),
    Migration(1003, "anomaly_rule_actions", (RULE_ACTIONS,)),
)
