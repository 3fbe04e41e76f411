"""Migrations for a ClickHouse cluster (``[clickhouse] cluster = "name"``).

Each ``CREATE TABLE IF NOT EXISTS t (…) ENGINE = XMergeTree(args) …`` of a part's migrations
becomes, ``ON CLUSTER``:

- ``t_local`` with ``ReplicatedXMergeTree('/clickhouse/tables/{shard}/{database}/{table}',
  '{replica}', args)`` on every node, and
- ``t`` as ``Distributed(cluster, currentDatabase(), t_local, <sharding key>)``, the name every
  query and insert already uses.

Sharding keys keep rows that must meet on one shard together: ledger rows by ``event_id`` (so
``FINAL`` collapses replays and re-ratings shard-locally), rollup rows by ``window_start`` (a
window's recomputed row replaces its previous one on the same shard), and the small
coordination tables (price versions, leases, alerts, migrations) on one shard (key ``0``) so the
deduplicated-insert claims are decided by one Keeper-backed table. ``ALTER TABLE t`` applies to
``t_local`` (and to ``t`` for column changes); other statements (backfills) run as written,
through the Distributed tables. A ``Null`` table (it stores nothing: ``sinks.minute_fanout``) is
created as it is on every node, and so is a materialized view (``CREATE MATERIALIZED VIEW IF NOT
EXISTS v TO t``): an insert into the Null table on any node fires that node's views, which write
to the Distributed tables. See docs/scaling.md for the settings a cluster needs.
"""

from __future__ import annotations

import re

CREATE = re.compile(r"^\s*CREATE TABLE IF NOT EXISTS (\w+)\s*(.*)$", re.S)
ENGINE = re.compile(r"ENGINE\s*=\s*(\w*MergeTree)(?:\(([^)]*)\))?")
AS_TABLE = re.compile(r"^AS (\w+)\s+")
NULL_ENGINE = re.compile(r"ENGINE\s*=\s*Null\s*$")
VIEW = re.compile(r"^\s*CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+)\s+(.*)$", re.S)
ALTER = re.compile(r"^\s*ALTER TABLE (\w+)\s+(.*)$", re.S)
REPLICA_PATH = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"
SHARD_BY_EVENT = ("ledger", "ledger_rerated")


def sharding_key(table: str) -> str:
    if table in SHARD_BY_EVENT:
        return "cityHash64(event_id)"
    if table.startswith("rollup_"):
        return "cityHash64(window_start)"
    return "0"


def local(table: str) -> str:
    return f"{table}_local"


def _replicated(match: re.Match[str]) -> str:
    engine, args = match.group(1), (match.group(2) or "").strip()
    return f"ENGINE = Replicated{engine}({REPLICA_PATH}{', ' + args if args else ''})"


def cluster_statements(statement: str, cluster: str) -> list[str]:
    """The statements that apply ``statement`` to ``cluster`` (see the module docstring)."""
    on = f"ON CLUSTER `{cluster}`"
    create = CREATE.match(statement)
    if create and NULL_ENGINE.search(create.group(2)):  # stores nothing: the same table on
        return [f"CREATE TABLE IF NOT EXISTS {create.group(1)} {on} {create.group(2).strip()}"]
    view = VIEW.match(statement)  # on every node, next to the Null table it reads
    if view:
        return [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view.group(1)} {on} {view.group(2)}"]
    if create:
        table, rest = create.groups()
        rest = AS_TABLE.sub(lambda m: f"AS {local(m.group(1))} ", rest)
        rest = ENGINE.sub(_replicated, rest, count=1)
        distributed = (
            f"CREATE TABLE IF NOT EXISTS {table} {on} AS {local(table)} "
            f"ENGINE = Distributed(`{cluster}`, currentDatabase(), {local(table)}, "
            f"{sharding_key(table)})"
        )
        return [f"CREATE TABLE IF NOT EXISTS {local(table)} {on} {rest.strip()}", distributed]
    alter = ALTER.match(statement)
    if alter:
        table, change = alter.groups()
        statements = [f"ALTER TABLE {local(table)} {on} {change.strip()}"]
        if re.match(r"(ADD|DROP|MODIFY|RENAME) COLUMN", change.strip()):
            statements.append(f"ALTER TABLE {table} {on} {change.strip()}")
        return statements
    return [statement]
