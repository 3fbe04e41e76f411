"""Versioned, idempotent schema migrations (run by ``spendstream migrate`` and at worker start).

Each migration is a list of statements applied in order and recorded in ``schema_migrations``.
Statements use ``IF NOT EXISTS`` so a migration interrupted half-way can simply run again.

Exactly-once design (see README "Exact totals"): the ledger is a ReplacingMergeTree keyed by
event; duplicates delivered by Kafka/Faust collapse to one row, and every read uses ``FINAL``.
``price_version`` is the replacing version, so a re-rating's newer row wins while the old cost
stays in ``ledger_rerated``. Rollups are recomputed from the deduplicated ledger for each window
a batch touched, so they inherit its exactness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

from spendstream.sinks.cluster import cluster_statements
from spendstream.sinks.open_windows import (
    CELLS_PENDING_DDL,
    CELLS_PENDING_TTL,
    PENDING_DDL,
    PENDING_TTL,
)

MONEY = "Decimal(38, 18)"
COST_COLUMNS = (
    "cost_input",
    "cost_output",
    "cost_cache_read",
    "cost_cache_write",
    "cost_reasoning",
)
TOKEN_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
ROLLUP_DIMENSIONS = ("team", "app", "env", "feature", "user", "provider", "model")
QUANTITY = "Decimal(38, 9)"  # unit quantities: events.UNIT_DECIMAL_PLACES places
# Usage units (migration 40): per-event maps plus their cost total; cost_total includes cost_units.
UNIT_LEDGER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("unit_quantities", f"Map(String, {QUANTITY})"),
    ("unit_costs", f"Map(String, {MONEY})"),
    ("unit_price_refs", "Map(String, String)"),
    ("cost_units", MONEY),
)
# The same in every rollup table, with the aggregate that recomputes each (a redesigned rollup
# table carries these three columns and sums them the same way).
UNIT_ROLLUP_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("cost_units", MONEY, "sum"),
    ("unit_quantities", f"Map(String, {QUANTITY})", "sumMap"),
    ("unit_costs", f"Map(String, {MONEY})", "sumMap"),
)
ROLLUP_TABLES = {"minute": "rollup_minute", "hour": "rollup_hour", "day": "rollup_day"}
# Lean rollups: every dimension but `user`, whose thousands of values make the full rollups
# nearly as large as the ledger; reads that do not group or filter by user use these.
LEAN_DIMENSIONS = ("team", "app", "env", "feature", "provider", "model")
# The tags every rollup keeps as columns (sinks.entry: the column is tags[k], '' when absent).
TAG_DIMENSIONS = ("team", "app", "env", "feature", "user")
LEAN_TABLES = {"hour": "rollup_hour_lean", "day": "rollup_day_lean"}
# Spend per user: the full day rollup keeps every combination of user with the other six
# dimensions (nearly one row per event at thousands of users); these keep only team and user.
USER_DIMENSIONS = ("team", "user")
USER_TABLES = {"hour": "rollup_hour_user", "day": "rollup_day_user"}
# Explain's cells (migration 60, docs/explain.md): every rollup dimension and the batch flag, so
# a change of batch share is told from a change of price; refreshed minute -> hour -> day.
DRIVER_DIMENSIONS = (*ROLLUP_DIMENSIONS, "batch")
DRIVER_TABLES = {
    "minute": "rollup_minute_drivers",
    "hour": "rollup_hour_drivers",
    "day": "rollup_day_drivers",
}
# Migration 70 keys the drivers rollups also by `response_cached` and `long_input` (the input
# tokens of a call above LONG_INPUT_FLOOR, else 0: a ledger ALIAS column, migration 12), so that
# what-if (advice.whatif) can tell long-context tiers and app-cached calls from a rollup: every
# catalog tier threshold is far above the floor, so `input > threshold` is `long_input > it`.
LONG_INPUT_FLOOR = 32_768
DRIVER_TABLE_DIMENSIONS = (*DRIVER_DIMENSIONS, "response_cached", "long_input")
# The drivers without `user` (migration 70): the spend of every user Explain does not name is a
# lean cell minus the named users' cells (explain.lumping), and what-if's groups; read in
# milliseconds where the drivers rollups hold nearly a row per event. Refreshed from the drivers.
LEAN_DRIVER_DIMENSIONS = tuple(name for name in DRIVER_TABLE_DIMENSIONS if name != "user")
LEAN_DRIVER_TABLES = {"hour": "rollup_hour_drivers_lean", "day": "rollup_day_drivers_lean"}
# Each rollup measure and the ledger expression it sums: the one definition behind the rollup
# refresh (sinks.ledger) and the ledger edges of rollup reads (sinks.windows).
MEASURE_FROM_LEDGER: dict[str, str] = {
    "events": "count()",
    "requests": "sum(request_count)",
    "unpriced_events": "countIf(NOT priced)",
    **{name: f"sum({name})" for name in (*TOKEN_COLUMNS, *COST_COLUMNS, "cost_total")},
}
MEASURES = tuple(MEASURE_FROM_LEDGER)


def _cost_defs() -> str:
    return ",\n    ".join(f"{name} {MONEY}" for name in (*COST_COLUMNS, "cost_total"))


def _token_defs() -> str:
    return ",\n    ".join(f"{name} UInt64" for name in TOKEN_COLUMNS)


LEDGER = f"""
CREATE TABLE IF NOT EXISTS ledger (
    event_id String,
    event_time DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC'),
    provider LowCardinality(String),
    model LowCardinality(String),
    response_model String,
    operation LowCardinality(String),
    team LowCardinality(String),
    app LowCardinality(String),
    env LowCardinality(String),
    feature LowCardinality(String),
    user String,
    tags Map(String, String),
    {_token_defs()},
    request_count UInt32,
    batch Bool,
    latency_ms Nullable(Float64),
    status LowCardinality(String),
    error_type String,
    provider_cost_usd Nullable({MONEY}),
    priced Bool,
    unpriced_reason String,
    price_ref String,
    price_version UInt32,
    {_cost_defs()},
    kafka_topic LowCardinality(String),
    kafka_partition UInt32,
    kafka_offset UInt64,
    INDEX idx_event_id event_id TYPE bloom_filter GRANULARITY 4,
    INDEX idx_user user TYPE bloom_filter GRANULARITY 4
) ENGINE = ReplacingMergeTree(price_version)
PARTITION BY toYYYYMM(event_time)
ORDER BY (toStartOfMinute(event_time), team, model, event_id)
SETTINGS non_replicated_deduplication_window = 1000
"""

LEDGER_MERGE_BASE = "ALTER TABLE ledger MODIFY SETTING merge_selector_base = 10"

# Old ratings superseded by `spendstream reprice`: same columns, never merged away.
LEDGER_RERATED = """
CREATE TABLE IF NOT EXISTS ledger_rerated AS ledger
ENGINE = MergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (price_version, toDate(event_time), team, model, event_id)
"""


DIMENSION_TYPES = {
    "user": "String",
    "batch": "Bool",
    "response_cached": "Bool",
    "long_input": "UInt64",
    "run_id": "String",
    "session_id": "String",
    "customer": "String",
}


def _rollup(table: str, dims: Sequence[str] = ROLLUP_DIMENSIONS) -> str:
    dimensions = ",\n    ".join(
        f"{name} {DIMENSION_TYPES.get(name, 'LowCardinality(String)')}" for name in dims
    )
    return f"""
CREATE TABLE IF NOT EXISTS {table} (
    window_start DateTime('UTC'),
    {dimensions},
    events UInt64,
    requests UInt64,
    unpriced_events UInt64,
    {_token_defs()},
    {_cost_defs()},
    computed_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, {", ".join(dims)})
"""


def _backfill(table: str, source: str, dims: Sequence[str]) -> str:
    """Fill a narrower rollup from a full one (re-runnable: same keys, ``FINAL`` collapses)."""
    group = ", ".join(dims)
    sums = ", ".join(f"sum({name})" for name in MEASURES)
    return (
        f"INSERT INTO {table} SELECT window_start, {group}, {sums}, max(computed_at) "
        f"FROM {source} FINAL GROUP BY window_start, {group}"
    )


PRICE_VERSIONS = """
CREATE TABLE IF NOT EXISTS price_versions (
    version UInt32,
    kind LowCardinality(String),
    catalog_digest String,
    created_at DateTime64(3, 'UTC'),
    period_start Nullable(DateTime64(3, 'UTC')),
    period_end Nullable(DateTime64(3, 'UTC')),
    note String
) ENGINE = ReplacingMergeTree
ORDER BY version
"""


# Round-2 event fields (docs/insights.md) on both ledger tables; rows written before read the
# defaults (no hash, not cached, no finish reason, no max_tokens, nothing avoided).
INSIGHT_COLUMNS = (
    "prompt_hash String DEFAULT ''",
    "response_cached Bool DEFAULT false",
    "finish_reason LowCardinality(String) DEFAULT ''",
    "max_tokens Nullable(UInt32)",
    f"cost_avoided {MONEY} DEFAULT 0",
)


# Where each call was served and priced (docs/pricing.md "Platforms and regions"), on both ledger
# tables; rows written before read '' (not recorded) until a re-rating changes their price.
PLATFORM_COLUMNS = (
    "platform LowCardinality(String) DEFAULT ''",
    "region LowCardinality(String) DEFAULT ''",
)


# Agent, session and customer fields (docs/agents.md), on both ledger tables; rows written before
# read '' / 0 (not part of any run, session or customer), which is what they were.
AGENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("trace_id", "String DEFAULT ''"),
    ("session_id", "String DEFAULT ''"),
    ("run_id", "String DEFAULT ''"),
    ("agent", "LowCardinality(String) DEFAULT ''"),
    ("step", "UInt32 DEFAULT 0"),
    ("parent", "String DEFAULT ''"),
    ("tool", "LowCardinality(String) DEFAULT ''"),
    ("customer", "String DEFAULT ''"),
)


# Anthropic's 1-hour cache writes (session 13): their tokens (a part of cache_write_tokens) and
# their cost (a part of cost_cache_write, never added to cost_total again), on both ledger
# tables. Rows written before read 0 / 0: they were rated with every write at the 5-minute
# rate, and those stored costs stay theirs (a re-rating of them prices them the same way).
CACHE_HOUR_COLUMNS: tuple[tuple[str, str], ...] = (
    ("cache_write_1h_tokens", "UInt64 DEFAULT 0"),
    ("cost_cache_write_1h", f"{MONEY} DEFAULT 0"),
)


def _add_columns(table: str, columns: Sequence[str]) -> str:
    return f"ALTER TABLE {table} " + ", ".join(f"ADD COLUMN IF NOT EXISTS {c}" for c in columns)


def _on_both_ledgers(columns: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """``columns`` (name, type) added to the ledger and to ``ledger_rerated``, its copy."""
    return tuple(
        _add_columns(table, [f"{name} {kind}" for name, kind in columns])
        for table in ("ledger", "ledger_rerated")
    )


# Usage units (docs/cost-drivers.md) on both ledger tables and every rollup table; rows written
# before read the defaults (empty maps, cost_units 0), which are their true values.
UNITS_MIGRATION_STATEMENTS = (
    _add_columns("ledger", [f"{name} {kind}" for name, kind in UNIT_LEDGER_COLUMNS]),
    _add_columns("ledger_rerated", [f"{name} {kind}" for name, kind in UNIT_LEDGER_COLUMNS]),
    *(
        _add_columns(table, [f"{name} {kind}" for name, kind, _sum in UNIT_ROLLUP_COLUMNS])
        for table in (*ROLLUP_TABLES.values(), *LEAN_TABLES.values(), *USER_TABLES.values())
    ),
)


def _drivers_backfill(dimensions: Sequence[str] = DRIVER_DIMENSIONS) -> tuple[str, ...]:
    """Fill the drivers rollups from the ledger once (a full read; re-runnable: same keys)."""
    dims = ", ".join(dimensions)
    measures = ", ".join(f"{sql} AS {name}" for name, sql in MEASURE_FROM_LEDGER.items())
    units = ", ".join(f"{agg}({name})" for name, _kind, agg in UNIT_ROLLUP_COLUMNS)
    unit_names = (name for name, _kind, _agg in UNIT_ROLLUP_COLUMNS)
    columns = ", ".join(("window_start", *dimensions, *MEASURES, "computed_at", *unit_names))
    statements = [
        f"INSERT INTO {DRIVER_TABLES['minute']} ({columns}) "
        f"SELECT toStartOfMinute(event_time) AS ws, {dims}, {measures}, now64(6), {units} "
        f"FROM ledger FINAL GROUP BY ws, {dims}"
    ]
    sums = ", ".join(f"sum({name})" for name in MEASURES)
    for unit, source in (("hour", "minute"), ("day", "hour")):
        statements.append(
            f"INSERT INTO {DRIVER_TABLES[unit]} ({columns}) "
            f"SELECT toStartOfInterval(window_start, INTERVAL 1 {unit}) AS ws, {dims}, {sums}, "
            f"now64(6), {units} FROM {DRIVER_TABLES[source]} FINAL GROUP BY ws, {dims}"
        )
    return tuple(statements)


DRIVERS_MIGRATION_STATEMENTS = (
    *(_rollup(table, DRIVER_DIMENSIONS) for table in DRIVER_TABLES.values()),
    *(
        _add_columns(table, [f"{name} {kind}" for name, kind, _sum in UNIT_ROLLUP_COLUMNS])
        for table in DRIVER_TABLES.values()
    ),
    *_drivers_backfill(),
)


def _lean_drivers_backfill() -> tuple[str, ...]:
    """Fill the lean drivers rollups from the drivers rollups (re-runnable: same keys)."""
    dims = ", ".join(LEAN_DRIVER_DIMENSIONS)
    unit_names = [name for name, _kind, _agg in UNIT_ROLLUP_COLUMNS]
    columns = ", ".join(("window_start", *LEAN_DRIVER_DIMENSIONS, *MEASURES, *unit_names))
    units = (f"{agg}({name})" for name, _kind, agg in UNIT_ROLLUP_COLUMNS)
    sums = ", ".join((*(f"sum({name})" for name in MEASURES), *units))
    return tuple(
        f"INSERT INTO {table} ({columns}, computed_at) "
        f"SELECT window_start, {dims}, {sums}, max(computed_at) "
        f"FROM {DRIVER_TABLES[unit]} FINAL GROUP BY window_start, {dims}"
        for unit, table in LEAN_DRIVER_TABLES.items()
    )


LONG_INPUT_ALIAS = (
    "ALTER TABLE ledger ADD COLUMN IF NOT EXISTS long_input UInt64 "
    f"ALIAS if(input_tokens > {LONG_INPUT_FLOOR}, input_tokens, 0)"
)
# The drivers rollups keyed by the two new dimensions too, refilled from the ledger (rows keyed
# before would read false / 0 for them), then the lean drivers filled from them.
_NEW_DRIVER_KEYS = (
    *(
        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS response_cached Bool, "
        "ADD COLUMN IF NOT EXISTS long_input UInt64, "
        f"MODIFY ORDER BY (window_start, {', '.join(DRIVER_TABLE_DIMENSIONS)})"
        for table in DRIVER_TABLES.values()
    ),
    *(f"TRUNCATE TABLE {table}" for table in DRIVER_TABLES.values()),
    *_drivers_backfill(DRIVER_TABLE_DIMENSIONS),
)
LEAN_DRIVERS_MIGRATION_STATEMENTS = (
    *_NEW_DRIVER_KEYS,
    *(_rollup(table, LEAN_DRIVER_DIMENSIONS) for table in LEAN_DRIVER_TABLES.values()),
    *(
        _add_columns(table, [f"{name} {kind}" for name, kind, _sum in UNIT_ROLLUP_COLUMNS])
        for table in LEAN_DRIVER_TABLES.values()
    ),
    *_lean_drivers_backfill(),
)


# Runs and customers (migration 1101, docs/agents.md): per minute, every event's run with its
# agent, session, customer, tag team and feature, and whether it was a tool call; each event is in
# exactly one row, so sums over runs, over customers and over the ledger agree exactly. The
# customer hour and day rollups (minute -> hour -> day) serve cost per customer, feature, trend.
AGENT_DIMENSIONS = ("team", "feature", "customer", "agent", "session_id", "run_id", "tool")
AGENT_TABLES = {"minute": "agent_minute"}
CUSTOMER_DIMENSIONS = ("team", "feature", "customer")
CUSTOMER_TABLES = {"hour": "customer_hour", "day": "customer_day"}
REVENUE = f"""
CREATE TABLE IF NOT EXISTS customer_revenue (
    customer String,
    period_start Date,
    period_end Date,
    amount {MONEY},
    note String,
    imported_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(imported_at)
ORDER BY (customer, period_start, period_end)
"""


def _agent_backfill() -> tuple[str, ...]:
    """Fill the run and customer rollups from the ledger once (re-runnable: same keys)."""
    dims = ", ".join(AGENT_DIMENSIONS)
    measures = ", ".join(f"{sql} AS {name}" for name, sql in MEASURE_FROM_LEDGER.items())
    units = ", ".join(f"{agg}({name})" for name, _kind, agg in UNIT_ROLLUP_COLUMNS)
    unit_names = [name for name, _kind, _agg in UNIT_ROLLUP_COLUMNS]
    columns = ", ".join(("window_start", *AGENT_DIMENSIONS, *MEASURES, "computed_at", *unit_names))
    customer_columns = ", ".join(
        ("window_start", *CUSTOMER_DIMENSIONS, *MEASURES, "computed_at", *unit_names)
    )
    group = ", ".join(CUSTOMER_DIMENSIONS)
    sums = ", ".join(f"sum({name})" for name in MEASURES)
    return (
        f"INSERT INTO {AGENT_TABLES['minute']} ({columns}) "
        f"SELECT toStartOfMinute(event_time) AS ws, {dims}, {measures}, now64(6), {units} "
        f"FROM ledger FINAL GROUP BY ws, {dims}",
        *(
            f"INSERT INTO {CUSTOMER_TABLES[unit]} ({customer_columns}) "
            f"SELECT toStartOfInterval(window_start, INTERVAL 1 {unit}) AS ws, {group}, {sums}, "
            f"now64(6), {units} FROM {source} FINAL GROUP BY ws, {group}"
            for unit, source in (
                ("hour", AGENT_TABLES["minute"]),
                ("day", CUSTOMER_TABLES["hour"]),
            )
        ),
    )


# agent_minute as migration 1101 leaves it: migration 1008 (sinks.minute_fanout), below 1101, names
# it in a view and so creates it first when it does not exist yet (1101's statements then no-ops).
AGENT_MINUTE_DDL = (
    _rollup(AGENT_TABLES["minute"], AGENT_DIMENSIONS),
    _add_columns(
        AGENT_TABLES["minute"], [f"{name} {kind}" for name, kind, _sum in UNIT_ROLLUP_COLUMNS]
    ),
)
AGENT_ROLLUP_STATEMENTS = (
    _rollup(AGENT_TABLES["minute"], AGENT_DIMENSIONS),
    *(_rollup(table, CUSTOMER_DIMENSIONS) for table in CUSTOMER_TABLES.values()),
    *(
        _add_columns(table, [f"{name} {kind}" for name, kind, _sum in UNIT_ROLLUP_COLUMNS])
        for table in (AGENT_TABLES["minute"], *CUSTOMER_TABLES.values())
    ),
    *_agent_backfill(),
    REVENUE,
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "ledger", (LEDGER, LEDGER_RERATED)),
    Migration(2, "rollups", tuple(_rollup(table) for table in ROLLUP_TABLES.values())),
    Migration(3, "price_versions", (PRICE_VERSIONS,)),
    # Price versions are claimed by a deduplicated insert (sinks.price_versions.next_price_version).
    Migration(
        10,
        "price_version_claims",
        (
            "ALTER TABLE price_versions ADD COLUMN IF NOT EXISTS claimed_by String DEFAULT ''",
            "ALTER TABLE price_versions MODIFY SETTING non_replicated_deduplication_window = 10000",
        ),
    ),
    Migration(
        11,
        "lean_rollups",
        (
            *(_rollup(table, LEAN_DIMENSIONS) for table in LEAN_TABLES.values()),
            *(
                _backfill(table, ROLLUP_TABLES[unit], LEAN_DIMENSIONS)
                for unit, table in LEAN_TABLES.items()
            ),
            *(_rollup(table, USER_DIMENSIONS) for table in USER_TABLES.values()),
            *(
                _backfill(table, ROLLUP_TABLES[unit], USER_DIMENSIONS)
                for unit, table in USER_TABLES.items()
            ),
        ),
    ),
    Migration(12, "ledger_long_input", (LONG_INPUT_ALIAS,)),
    # The open hour and day waiting for a refresh (sinks.open_windows, issue 29).
    Migration(20, "rollup_pending", (PENDING_DDL,)),
    Migration(21, "rollup_pending_ttl", (PENDING_TTL,)),
    Migration(40, "usage units", UNITS_MIGRATION_STATEMENTS),
    Migration(
        50,
        "ledger_insight_fields",
        tuple(_add_columns(table, INSIGHT_COLUMNS) for table in ("ledger", "ledger_rerated")),
    ),
    Migration(60, "drivers_rollups", DRIVERS_MIGRATION_STATEMENTS),
    Migration(70, "lean_drivers_rollups", LEAN_DRIVERS_MIGRATION_STATEMENTS),
    Migration(
        80,
        "ledger_platform_region",
        tuple(_add_columns(table, PLATFORM_COLUMNS) for table in ("ledger", "ledger_rerated")),
    ),
    Migration(1100, "ledger_agent_fields", _on_both_ledgers(AGENT_COLUMNS)),
    Migration(1101, "runs_and_customers", AGENT_ROLLUP_STATEMENTS),
    # Fewer rewrites of each ledger row by background merges (session 11): a merge waits for
    # parts adding up to 10x the largest of them (ClickHouse's default 5), which halves the
    # rows merged per event written at a steady stream for a few more small parts
    # (docs/benchmarks-ingest.md, "Session 11"). Rows and reads are unchanged.
    Migration(1006, "ledger_merge_selector_base", (LEDGER_MERGE_BASE,)),
    # The insight cells of an hour whose refresh a timer flush held back (session 12: they are
    # refreshed at the hour's close and on a drain only, sinks.open_windows); their readers take
    # those hours from the ledger.
    Migration(1007, "rollup_pending_cells", (CELLS_PENDING_DDL, CELLS_PENDING_TTL)),
    Migration(1012, "ledger_cache_write_1h", _on_both_ledgers(CACHE_HOUR_COLUMNS)),
)
"""The ledger's own tables. Other parts own theirs (``notifications.schema.MIGRATIONS``); the list a
process applies is assembled in one place, :mod:`spendstream.worker.schema`."""


MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, "
    "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = ReplacingMergeTree "
    "ORDER BY version"
)


def migrate(
    client: Client, migrations: Sequence[Migration], cluster: str | None = None
) -> list[int]:
    """Apply every migration of ``migrations`` not yet recorded, in version order; return the
    versions applied now. Versions must be unique across the list. With ``cluster``, every
    statement is rewritten for it (replicated local tables + Distributed tables, see
    :mod:`spendstream.sinks.cluster`)."""
    # Imported here: the CLI's reading commands load this module (through sinks.windows) for
    # their help text and need no structlog or settings model to print it.
    from spendstream.logs import get_logger

    log = get_logger(__name__)
    versions = [migration.version for migration in migrations]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions in {sorted(versions)}")
    for statement in statements_for(MIGRATIONS_TABLE, cluster):
        client.command(statement)
    applied = {row[0] for row in client.query("SELECT version FROM schema_migrations").result_rows}
    done: list[int] = []
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version in applied:
            continue
        for statement in migration.statements:
            for each in statements_for(statement, cluster):
                client.command(each)
        client.insert(
            "schema_migrations", [[migration.version, migration.name]], ["version", "name"]
        )
        log.info("migration applied", version=migration.version, name=migration.name)
        done.append(migration.version)
    return done


def statements_for(statement: str, cluster: str | None) -> list[str]:
    """``statement`` as run on a single server, or rewritten for ``cluster``."""
    return cluster_statements(statement, cluster) if cluster else [statement]
