"""``[clickhouse] cluster``: every migration statement rewritten for a cluster (replicated
local tables ON CLUSTER plus Distributed tables) and accepted by ClickHouse's parser."""

from __future__ import annotations

import chdb
import pytest

from spendstream.config import load_settings
from spendstream.sinks.cluster import cluster_statements, sharding_key
from spendstream.sinks.migrations import MIGRATIONS_TABLE, statements_for
from spendstream.worker.schema import MIGRATIONS

ALL = [MIGRATIONS_TABLE, *(s for m in MIGRATIONS for s in m.statements)]


def test_every_statement_parses_for_a_cluster() -> None:
    # One in-memory session for every statement (a fresh ``chdb.query`` session costs ~0.1 s).
    session = chdb.connect(":memory:")
    try:
        cursor = session.cursor()
        for statement in ALL:
            for each in statements_for(statement, "prod"):
                # Parse only (EXPLAIN AST executes nothing): chDB has no cluster to run it on.
                cursor.execute(f"EXPLAIN AST {each}")
    finally:
        session.close()


def test_tables_become_replicated_locals_behind_distributed_tables() -> None:
    ledger, distributed = cluster_statements(MIGRATIONS[0].statements[0], "prod")
    assert ledger.startswith("CREATE TABLE IF NOT EXISTS ledger_local ON CLUSTER `prod` (")
    assert (
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', "
        "'{replica}', price_version)" in ledger
    )
    assert distributed == (
        "CREATE TABLE IF NOT EXISTS ledger ON CLUSTER `prod` AS ledger_local ENGINE = "
        "Distributed(`prod`, currentDatabase(), ledger_local, cityHash64(event_id))"
    )
    rerated, _ = cluster_statements(MIGRATIONS[0].statements[1], "prod")
    assert "AS ledger_local ENGINE = ReplicatedMergeTree('/clickhouse" in rerated
    creates = [  # Null tables store nothing: created as they are (tests/test_minute_fanout.py)
        s for s in ALL if s.lstrip().startswith("CREATE TABLE") and "ENGINE = Null" not in s
    ]
    for statement in creates:
        local, dist = cluster_statements(statement, "prod")
        assert "ENGINE = Replicated" in local and "MergeTree(" in local, local
        assert "ENGINE = Distributed(`prod`" in dist
    assert sharding_key("rollup_day_user") == "cityHash64(window_start)"
    assert sharding_key("leader_terms") == sharding_key("price_versions") == "0"


def test_alters_reach_locals_and_column_changes_the_distributed_table() -> None:
    add, setting = (
        cluster_statements(s, "prod")
        for s in next(m for m in MIGRATIONS if m.version == 10).statements
    )
    assert add == [
        "ALTER TABLE price_versions_local ON CLUSTER `prod` ADD COLUMN IF NOT EXISTS claimed_by "
        "String DEFAULT ''",
        "ALTER TABLE price_versions ON CLUSTER `prod` ADD COLUMN IF NOT EXISTS claimed_by "
        "String DEFAULT ''",
    ]
    assert setting == [
        "ALTER TABLE price_versions_local ON CLUSTER `prod` MODIFY SETTING "
        "non_replicated_deduplication_window = 10000"
    ]
    backfill = next(m for m in MIGRATIONS if m.version == 11).statements[2]
    assert cluster_statements(backfill, "prod") == [backfill]  # through Distributed tables


@pytest.mark.parametrize("value", ["prod", None])
def test_cluster_setting(value: str | None) -> None:
    settings = load_settings(None, clickhouse={"cluster": value})
    assert settings.clickhouse.cluster == value
    assert statements_for(ALL[1], value) == (
        cluster_statements(ALL[1], value) if value else [ALL[1]]
    )
