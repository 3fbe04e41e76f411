"""Stage 6, reports: every audit query (``sinks.audits.AUDITS``) and ``spend_report_sql`` over a
generated ledger of N rows (10 M by default) in an embedded chDB.

The rows are generated inside ClickHouse with one ``INSERT INTO ledger … SELECT … FROM
numbers(N)`` (:data:`GENERATE_SQL`): no Python per row, so 10 M rows take seconds. Columns are
derived from ``number`` with hashes (tokens, users, times over 30 days); costs are exact Decimal
products of the tokens and per-model list rates, 2 % of the rows are unpriced, a third read the
prompt cache, and 1 % have no ``app`` tag (for the tag audits). For the insights: 4 % are
embeddings, four in five carry a ``prompt_hash`` drawn from 200,000 (so prompts repeat), 5 %
end with ``finish_reason = 'length'``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from spendstream.sinks.audits import AUDITS
from spendstream.sinks.client import connect
from spendstream.sinks.ledger import LEDGER_COLUMNS, rebuild_rollups
from spendstream.sinks.migrations import AGENT_COLUMNS, CACHE_HOUR_COLUMNS
from spendstream.sinks.queries import spend_report_sql
from spendstream.worker.schema import migrate

SPAN_DAYS = 30
RATE = "toDecimal128({}, 18)"
IN_RATES = "['0.0000025', '0.00000015', '0.000003', '0.000001']"
OUT_RATES = "['0.00001', '0.0000006', '0.000015', '0.000005']"
# Every ledger column but the agent fields (runs, sessions, customers) and the 1-hour cache
# writes (none generated): left at their defaults.
DEFAULTED = {name for name, _ in (*AGENT_COLUMNS, *CACHE_HOUR_COLUMNS)}
GENERATED_COLUMNS = [c for c in LEDGER_COLUMNS if c not in DEFAULTED]
GENERATE_SQL = f"""
INSERT INTO ledger ({", ".join(GENERATED_COLUMNS)})
SELECT
    concat('gen-', toString(number)) AS event_id,
    {{start:DateTime64(3)}} + toIntervalMillisecond(cityHash64(number, 1) % {{span_ms:UInt64}})
        AS event_time,
    event_time AS ingested_at,
    ['openai', 'openai', 'anthropic', 'anthropic'][number % 4 + 1] AS provider,
    ['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4-5', 'claude-haiku-4-5'][number % 4 + 1] AS model,
    '' AS response_model,
    if(number % 25 = 0, 'embeddings', 'chat') AS operation,
    ['search', 'support', 'growth', 'research', 'platform'][cityHash64(number, 2) % 5 + 1]
        AS team,
    if(number % 100 = 0, '', concat('app-', toString(cityHash64(number, 3) % 8))) AS app,
    'prod' AS env,
    ['qa', 'summarise', 'triage'][cityHash64(number, 4) % 3 + 1] AS feature,
    concat('user-', toString(cityHash64(number, 5) % 2000)) AS user,
    mapFilter((k, v) -> v != '', map('team', team, 'app', app, 'env', env, 'feature', feature,
        'user', user)) AS tags,
    1 + cityHash64(number, 6) % 20000 AS input_tokens,
    cityHash64(number, 7) % 2000 AS output_tokens,
    if(number % 3 = 0, intDiv(input_tokens, 2), 0) AS cache_read_tokens,
    0 AS cache_write_tokens,
    0 AS reasoning_tokens,
    1 AS request_count,
    false AS batch,
    toFloat64(100 + cityHash64(number, 8) % 5000) AS latency_ms,
    'ok' AS status,
    '' AS error_type,
    NULL AS provider_cost_usd,
    number % 50 != 7 AS priced,
    if(priced, '', 'no price for this model') AS unpriced_reason,
    if(priced, concat(provider, '/', model, '@2026-01-01'), '') AS price_ref,
    1 AS price_version,
    if(priced, (input_tokens - cache_read_tokens)
        * toDecimal128(arrayElement({IN_RATES}, number % 4 + 1), 18), 0) AS cost_input,
    if(priced, output_tokens
        * toDecimal128(arrayElement({OUT_RATES}, number % 4 + 1), 18), 0) AS cost_output,
    if(priced, cache_read_tokens
        * toDecimal128(arrayElement({IN_RATES}, number % 4 + 1), 18) / 10, 0) AS cost_cache_read,
    toDecimal128(0, 18) AS cost_cache_write,
    toDecimal128(0, 18) AS cost_reasoning,
    cost_input + cost_output + cost_cache_read AS cost_total,
    'spendstream.usage.v1' AS kafka_topic,
    number % 4 AS kafka_partition,
    intDiv(number, 4) AS kafka_offset,
    CAST(map(), 'Map(String, Decimal(38, 9))') AS unit_quantities,
    CAST(map(), 'Map(String, Decimal(38, 18))') AS unit_costs,
    CAST(map(), 'Map(String, String)') AS unit_price_refs,
    toDecimal128(0, 18) AS cost_units,
    if(number % 5 = 0, '', hex(cityHash64(cityHash64(number, 9) % 200000))) AS prompt_hash,
    false AS response_cached,
    if(number % 20 = 0, 'length', 'stop') AS finish_reason,
    2000 AS max_tokens,
    toDecimal128(0, 18) AS cost_avoided, '' AS platform, '' AS region
FROM numbers({{rows:UInt64}})
"""


def generate(
    client: Client, rows: int, end: datetime, span_days: int = SPAN_DAYS
) -> dict[str, Any]:
    """Fill the (empty) ledger with ``rows`` generated rows over the ``span_days`` ending at
    ``end`` and rebuild every rollup from it (reports, audits and budget figures read whole
    hours and days from the rollups: a ledger without them would be measured wrong); return
    timings. The rebuild goes one day at a time (~0.45 s a day whatever the rows): a smoke run
    (``--quick``) spans 2 days instead of 30."""
    start = end - timedelta(days=span_days)
    started = time.perf_counter()
    client.command(
        GENERATE_SQL,
        parameters={"start": start, "span_ms": span_days * 86_400_000, "rows": rows},
    )
    seconds = time.perf_counter() - started
    parts = client.query(
        "SELECT count() FROM system.parts WHERE active AND database = currentDatabase() "
        "AND table = 'ledger'"
    ).result_rows[0][0]
    started = time.perf_counter()
    rebuild_rollups(client, start - timedelta(days=1), end + timedelta(minutes=1))
    return {
        "rows": rows,
        "span_days": span_days,
        "generate_s": round(seconds, 2),
        "active_parts": int(parts),
        "rollups_rebuild_s": round(time.perf_counter() - started, 1),
    }


def run_reports(dsn: str, rows: int, runs: int, span_days: int = SPAN_DAYS) -> dict[str, Any]:
    """Generate the ledger once, then time each query ``runs`` times (milliseconds)."""
    client = connect(dsn, f"bench_reports_{int(time.time())}")
    migrate(client)
    end = datetime.now(UTC).replace(microsecond=0)
    generated = generate(client, rows, end, span_days)
    since, until = end - timedelta(days=SPAN_DAYS + 1), end + timedelta(days=1)
    queries: dict[str, tuple[str, dict[str, Any]]] = {
        name: (audit.sql, audit.parameters(since, until)) for name, audit in AUDITS.items()
    }
    queries["spend_report(team,model)"] = spend_report_sql(["team", "model"], since, until)
    queries["spend_report(user)"] = spend_report_sql(["user"], since, until)
    timings: dict[str, list[float]] = {name: [] for name in queries}
    for _ in range(runs):
        for name, (sql, parameters) in queries.items():
            started = time.perf_counter()
            client.query(sql, parameters=parameters)
            timings[name].append((time.perf_counter() - started) * 1000)
    return {**generated, "query_ms": timings}
