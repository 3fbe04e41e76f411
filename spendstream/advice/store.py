"""Recommendation decisions: migration 900, an append-only audit log of who decided what, why.

``recommendation_decisions`` keeps every decision (open -> accepted or dismissed, and back to
open); the state of a recommendation is its newest row. Rows carry the scope and the action as
they were when decided, so the log reads on its own after the traffic changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from spendstream.advice.model import STATES, Recommendation
from spendstream.sinks.access import Reader, instant
from spendstream.sinks.migrations import MONEY, Migration

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

DECISIONS = f"""
CREATE TABLE IF NOT EXISTS recommendation_decisions (
    rec_id String,
    kind LowCardinality(String),
    scope String,
    action String,
    state LowCardinality(String),
    reason String,
    decided_by String,
    decided_at DateTime64(3, 'UTC'),
    monthly_usd {MONEY}
) ENGINE = MergeTree
ORDER BY (rec_id, decided_at)
"""
MIGRATIONS: tuple[Migration, ...] = (Migration(900, "recommendation_decisions", (DECISIONS,)),)
COLUMNS = (
    "rec_id",
    "kind",
    "scope",
    "action",
    "state",
    "reason",
    "decided_by",
    "decided_at",
    "monthly_usd",
)
CURRENT_SQL = (
    f"SELECT {', '.join(COLUMNS)} FROM recommendation_decisions "
    "ORDER BY rec_id, decided_at DESC LIMIT 1 BY rec_id"
)
HISTORY_SQL = (
    f"SELECT {', '.join(COLUMNS)} FROM recommendation_decisions "
    "WHERE decided_at >= {since:DateTime64(3)} ORDER BY decided_at, rec_id"
)


@dataclass(frozen=True)
class Decision:
    rec_id: str
    state: str
    reason: str
    decided_by: str
    decided_at: datetime
    kind: str
    scope: dict[str, str]
    action: str
    monthly_usd: Decimal  # the projection when decided


def current(reader: Reader) -> dict[str, Decision]:
    """The newest decision of every recommendation ever decided."""
    return {
        row["rec_id"]: Decision(
            row["rec_id"],
            row["state"],
            row["reason"],
            row["decided_by"],
            instant(row["decided_at"]),
            row["kind"],
            json.loads(row["scope"]),
            row["action"],
            Decimal(str(row["monthly_usd"])),
        )
        for row in reader.query(CURRENT_SQL).records()
    }


def history(reader: Reader, since: datetime) -> tuple[list[str], list[list[Any]]]:
    """The audit log from ``since`` on (columns, rows)."""
    result = reader.query(HISTORY_SQL, {"since": since})
    return list(result.columns), [list(row) for row in result.rows]


def record(
    client: Client, rec: Recommendation, state: str, by: str, reason: str, at: datetime
) -> Decision:
    """Append ``rec``'s new state (one INSERT: all or nothing)."""
    if state not in STATES:
        raise ValueError(f"state {state!r}: choose from {', '.join(STATES)}")
    if not by:
        raise ValueError("a decision needs its author")
    row = [
        rec.rec_id,
        rec.kind,
        json.dumps(rec.scope, sort_keys=True),
        rec.action,
        state,
        reason,
        by,
        at,
        Decimal(rec.monthly_usd),
    ]
    client.insert("recommendation_decisions", [row], list(COLUMNS))
    return Decision(
        rec.rec_id, state, reason, by, at, rec.kind, rec.scope, rec.action, rec.monthly_usd
    )
