"""The alert tables: migration 100 (in the list :mod:`spendstream.worker.schema` assembles).

- ``alerts``: one row per alert (id = hash of budget, kind, period start and threshold); its
  lifecycle ``firing → resolved`` or ``silenced``, the figures and the frozen message text.
- ``alert_deliveries``: the outbox, one row per (alert, channel): ``pending → delivered`` or
  ``failed``/``silenced``, with attempts, last error and timestamps.
- ``alert_silences``: one row per budget; a silence is active while ``until`` is in the future.

All three are ReplacingMergeTree on ``version`` and read with ``FINAL``: every state change is
a new row with a higher version. Creation inserts carry an ``insert_deduplication_token`` so a
replayed creation is dropped by ClickHouse itself.
"""

from __future__ import annotations

from spendstream.sinks.migrations import MONEY, Migration

TIME = "DateTime64(3, 'UTC')"

ALERTS = f"""
CREATE TABLE IF NOT EXISTS alerts (
    alert_id String,
    budget String,
    kind LowCardinality(String),
    threshold UInt16,
    period_start {TIME},
    period_end {TIME},
    state LowCardinality(String),
    owner String,
    scope String,
    channels Array(String),
    spend {MONEY},
    limit_usd {MONEY},
    percent Decimal(18, 2),
    forecast_usd Nullable({MONEY}),
    overrun_at Nullable({TIME}),
    title String,
    body String,
    note String,
    created_at {TIME},
    updated_at {TIME},
    resolved_at Nullable({TIME}),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY alert_id
SETTINGS non_replicated_deduplication_window = 1000
"""

DELIVERIES = f"""
CREATE TABLE IF NOT EXISTS alert_deliveries (
    alert_id String,
    channel String,
    budget String,
    status LowCardinality(String),
    attempts UInt32,
    last_error String,
    created_at {TIME},
    next_attempt_at {TIME},
    last_attempt_at Nullable({TIME}),
    delivered_at Nullable({TIME}),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (alert_id, channel)
SETTINGS non_replicated_deduplication_window = 1000
"""

SILENCES = f"""
CREATE TABLE IF NOT EXISTS alert_silences (
    budget String,
    until {TIME},
    reason String,
    created_by String,
    created_at {TIME},
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY budget
"""

ALERT_COLUMNS = (
    "alert_id",
    "budget",
    "kind",
    "threshold",
    "period_start",
    "period_end",
    "state",
    "owner",
    "scope",
    "channels",
    "spend",
    "limit_usd",
    "percent",
    "forecast_usd",
    "overrun_at",
    "title",
    "body",
    "note",
    "created_at",
    "updated_at",
    "resolved_at",
    "version",
)
DELIVERY_COLUMNS = (
    "alert_id",
    "channel",
    "budget",
    "status",
    "attempts",
    "last_error",
    "created_at",
    "next_attempt_at",
    "last_attempt_at",
    "delivered_at",
    "version",
)
SILENCE_COLUMNS = ("budget", "until", "reason", "created_by", "created_at", "version")

MIGRATIONS: tuple[Migration, ...] = (Migration(100, "alerts", (ALERTS, DELIVERIES, SILENCES)),)
