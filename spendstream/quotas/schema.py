"""The quota tables: migration 300 (in the list :mod:`spendstream.worker.schema` assembles).

- ``quota_decisions``: the current decision per (quota, key); ReplacingMergeTree on ``version``
  (read with FINAL). A restarted worker reloads it, so decisions survive a SIGKILL.
- ``quota_transitions``: block/unblock (warn/clear for ``action = "warn"``) history; one row per
  transition id (a hash of quota, key, period, kind and the override epoch), so a transition seen
  by two workers or twice after a restart is one row (and one notification).
- ``quota_overrides``: the audit log of overrides and resets (append-only: who, when, why); the
  one in effect for a key is the latest whose ``until`` is in the future.
"""

from __future__ import annotations

from spendstream.sinks.migrations import MONEY, Migration

TIME = "DateTime64(3, 'UTC')"

DECISIONS = f"""
CREATE TABLE IF NOT EXISTS quota_decisions (
    quota String,
    key String,
    unit LowCardinality(String),
    allowed Bool,
    over Bool,
    used {MONEY},
    limit {MONEY},
    remaining {MONEY},
    period_start {TIME},
    resets_at {TIME},
    as_of {TIME},
    reason String,
    epoch String,
    override_until Nullable({TIME}),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (quota, key)
"""

TRANSITIONS = f"""
CREATE TABLE IF NOT EXISTS quota_transitions (
    transition_id String,
    quota String,
    key String,
    kind LowCardinality(String),
    used {MONEY},
    limit {MONEY},
    unit LowCardinality(String),
    period_start {TIME},
    epoch String,
    at {TIME},
    reason String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY transition_id
SETTINGS non_replicated_deduplication_window = 1000
"""

OVERRIDES = f"""
CREATE TABLE IF NOT EXISTS quota_overrides (
    override_id String,
    quota String,
    key String,
    kind LowCardinality(String),
    limit Nullable({MONEY}),
    baseline {MONEY},
    until {TIME},
    reason String,
    created_by String,
    created_at {TIME}
) ENGINE = MergeTree
ORDER BY (quota, key, created_at)
"""

DECISION_COLUMNS = (
    "quota",
    "key",
    "unit",
    "allowed",
    "over",
    "used",
    "limit",
    "remaining",
    "period_start",
    "resets_at",
    "as_of",
    "reason",
    "epoch",
    "override_until",
    "version",
)
TRANSITION_COLUMNS = (
    "transition_id",
    "quota",
    "key",
    "kind",
    "used",
    "limit",
    "unit",
    "period_start",
    "epoch",
    "at",
    "reason",
    "version",
)
OVERRIDE_COLUMNS = (
    "override_id",
    "quota",
    "key",
    "kind",
    "limit",
    "baseline",
    "until",
    "reason",
    "created_by",
    "created_at",
)

MIGRATIONS: tuple[Migration, ...] = (Migration(300, "quotas", (DECISIONS, TRANSITIONS, OVERRIDES)),)
