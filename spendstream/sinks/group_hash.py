"""Each tag group's two 64-bit hashes, stored on the rollups that keep users (migration 1004).

A tag group is a (team, app, env, feature, user) combination. Explain ranks every group by how
far its spend moved and reads the cells of the groups it keeps (``explain.lumping``); at
thousands of users the rollups hold nearly a row per event, and aggregating or matching rows by
five strings costs several times more than by one fixed-size key. The two hashes (the second
over the values in reverse order) are ``MATERIALIZED`` columns: computed when a refresh writes
a row, so no refresh statement changes, and computed at read for parts written before the
migration until its ``MATERIALIZE COLUMN`` mutation has rewritten them (the value is the same
either way). The ledger has them as ``ALIAS`` columns, computed at read (its edges are a few
minutes of events), so every source of a period reads them by the same names.
"""

from __future__ import annotations

from spendstream.sinks.migrations import (
    DRIVER_TABLES,
    ROLLUP_TABLES,
    TAG_DIMENSIONS,
    Migration,
)

GROUP_HASHES = ("group_hash", "group_hash_2")
# (name, expression) of each hash: the tag values in order, then in reverse order.
HASH_EXPRESSIONS = (
    (GROUP_HASHES[0], f"cityHash64({', '.join(TAG_DIMENSIONS)})"),
    (GROUP_HASHES[1], f"cityHash64({', '.join(reversed(TAG_DIMENSIONS))})"),
)
# The rollups keyed by every tag (Explain's ranking reads the first two, its cells the last two).
HASHED_TABLES = (
    ROLLUP_TABLES["hour"],
    ROLLUP_TABLES["day"],
    DRIVER_TABLES["hour"],
    DRIVER_TABLES["day"],
)


def _add(table: str, kind: str) -> str:
    columns = ", ".join(
        f"ADD COLUMN IF NOT EXISTS {name} UInt64 {kind} {expression}"
        for name, expression in HASH_EXPRESSIONS
    )
    return f"ALTER TABLE {table} {columns}"


GROUP_HASH_STATEMENTS = (
    _add("ledger", "ALIAS"),
    *(_add(table, "MATERIALIZED") for table in HASHED_TABLES),
    # Rewrites the parts written before (their reads compute the hashes until it has).
    *(
        f"ALTER TABLE {table} " + ", ".join(f"MATERIALIZE COLUMN {name}" for name in GROUP_HASHES)
        for table in HASHED_TABLES
    ),
)

MIGRATIONS = (Migration(1004, "group_hashes", GROUP_HASH_STATEMENTS),)
