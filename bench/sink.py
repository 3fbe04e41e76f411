"""Stage 5, the sink (and the processor that feeds it), in this process on an embedded chDB.

- processor: ``BatchProcessor.process`` (parse + validate + price), split into ``parse_event``
  and ``Pricer.rate``;
- sink: ``LedgerWriter.write`` (rows + one INSERT with a dedup token + rollup refresh) against a
  bare clickhouse-connect ``insert`` of the same pre-built rows into a copy of the ledger table,
  with the split: row building, insert, rollup refresh; and the same rows inserted with the
  driver's own column types (``Decimal(str(x))`` per money value) against ours
  (``sinks.columns``: pre-scaled integers), both with the types resolved once.

Each run writes into a fresh database, so every batch is new to the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.datatypes.base import ClickHouseType
from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.driver.client import Client

from bench.common import ratio
from spendstream.events import parse_event
from spendstream.pricing import default_pricer
from spendstream.sinks.client import connect
from spendstream.sinks.columns import insert_types
from spendstream.sinks.entry import LEDGER_COLUMNS, LedgerEntry
from spendstream.sinks.ledger import LedgerWriter
from spendstream.stream.processor import BatchProcessor, RawMessage
from spendstream.worker.schema import migrate


def timed(action: Callable[..., object], *args: Any) -> float:
    """Seconds taken by ``action(*args)``."""
    started = time.perf_counter()
    action(*args)
    return time.perf_counter() - started


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def processor_run(payloads: Sequence[bytes], batch_size: int) -> dict[str, Any]:
    """Per-event microseconds of the processor and of its two main parts."""
    pricer = default_pricer()
    processor = BatchProcessor(pricer)
    messages = [RawMessage(payload, "bench", 0, offset) for offset, payload in enumerate(payloads)]
    batches = chunks(messages, batch_size)
    total = sum(timed(processor.process, batch) for batch in batches)
    events = [parse_event(payload) for payload in payloads[:batch_size]]
    parse = timed(lambda: [parse_event(payload) for payload in payloads[:batch_size]])
    rate = timed(lambda: [pricer.rate(event) for event in events])
    sample = len(events) or 1
    return {
        "events_per_s": len(payloads) / total,
        "process_us_per_event": total / len(payloads) * 1e6,
        "parse_event_us": parse / sample * 1e6,
        "pricer_rate_us": rate / sample * 1e6,
    }


def entries_for(payloads: Sequence[bytes]) -> list[LedgerEntry]:
    messages = [RawMessage(payload, "bench", 0, offset) for offset, payload in enumerate(payloads)]
    return BatchProcessor(default_pricer()).process(messages).entries


def fresh_database(dsn: str, name: str) -> Client:
    client = connect(dsn, name)
    migrate(client)
    for copy in ("ledger_bare", "ledger_stock", "ledger_scaled"):
        client.command(f"CREATE TABLE IF NOT EXISTS {copy} AS ledger")
    return client


def bare_insert(client: Client, rows: list[list[Any]]) -> None:
    client.insert("ledger_bare", rows, column_names=LEDGER_COLUMNS)


def typed_insert(
    client: Client, table: str, rows: list[list[Any]], types: Sequence[ClickHouseType]
) -> None:
    client.insert(table, rows, column_names=LEDGER_COLUMNS, column_types=types)


def sink_run(dsn: str, entries: Sequence[LedgerEntry], batch_size: int, run: int) -> dict[str, Any]:
    """Write ``entries`` in ``batch_size`` batches through LedgerWriter, then the same rows with
    a bare insert; time the row building, bare insert and rollup refresh separately."""
    client = fresh_database(dsn, f"bench_sink_{run}_{int(time.time())}")
    writer = LedgerWriter(client, price_version=1)
    batches = chunks(entries, batch_size)
    writer_s = sum(timed(writer.write, batch) for batch in batches)
    now = datetime.now(UTC)
    rows_s, insert_s, rollup_s, stock_s, scaled_s = 0.0, 0.0, 0.0, 0.0, 0.0
    names = [kind.name for kind in writer.ledger_column_types()]
    stock, scaled = [get_from_name(name) for name in names], insert_types(names)
    rollup_batches: list[float] = []  # µs per event of each batch's refresh (grows with the day)
    for batch in batches:
        started = time.perf_counter()
        rows = [entry.row(1, now) for entry in batch]
        rows_s += time.perf_counter() - started
        insert_s += timed(bare_insert, client, rows)
        stock_s += timed(typed_insert, client, "ledger_stock", rows, stock)
        scaled_s += timed(typed_insert, client, "ledger_scaled", rows, scaled)
        took = timed(writer.refresh_rollups, [entry.event.event_time for entry in batch])
        rollup_batches.append(took / len(batch) * 1e6)
        rollup_s += took
    count = len(entries)
    written = int(client.query("SELECT count() FROM ledger FINAL").result_rows[0][0])
    return {
        "writer_events_per_s": count / writer_s,
        "bare_insert_events_per_s": count / insert_s,
        "ratio_writer_to_bare": ratio(insert_s, writer_s),
        "split_us_per_event": {
            "row_building": rows_s / count * 1e6,
            "insert": insert_s / count * 1e6,
            "rollups": rollup_s / count * 1e6,
            "insert_stock_types": stock_s / count * 1e6,
            "insert_scaled_types": scaled_s / count * 1e6,
            "writer_total": writer_s / count * 1e6,
        },
        "ratio_scaled_to_stock_insert": ratio(scaled_s, stock_s),
        "ledger_rows": written,
        "rollup_us_first_batch": rollup_batches[0],
        "rollup_us_last_batch": rollup_batches[-1],
    }
