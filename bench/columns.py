"""The worker's hot path per slice, in process: the reference path against the fast path
(issue 29: msgspec decode, scaled-integer pricing, integer money columns), with the raw limits
measured beside them in the same run.

    .venv/bin/python -m bench.columns --events 100000 --runs 3

Per event, CPU µs (``time.process_time``: this process, so chDB's threads count in the insert
figures) of each step, on SDK-packed messages (``--pack`` events per NDJSON message, the SDK's
default 100) and on one event per message:

- ``process``: ``BatchProcessor.process`` (decode, validate, dedup, price) with ``fast_path``
  off (the reference: ``parse_event`` + ``Pricer.rate``) and on;
- ``columns``: ``ledger_columns`` (Decimal money vs scaled-integer money);
- ``insert``: the ledger INSERT of those columns (``ScaledDecimal`` vs ``ScaledInteger`` money
  writers), column-oriented, into chDB;
- raw limits: msgspec's bare decode of the same lines (no checks) and a bare clickhouse-connect
  column-oriented insert of the same columns with the driver's own types.

Runs alternate reference and fast on the same messages, so both see the same machine load;
each figure is the median of ``--runs``. The entries are checked equal (ledger columns) before
anything is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
from clickhouse_connect.datatypes.registry import get_from_name

from bench.common import RESULTS_DIR, make_events, ratio, summarise, write_results
from spendstream.pricing import default_pricer
from spendstream.sinks.client import connect
from spendstream.sinks.columns import insert_types
from spendstream.sinks.entry import LEDGER_COLUMNS, LedgerEntry, ledger_columns
from spendstream.sinks.ledger import LedgerWriter
from spendstream.stream.processor import BatchProcessor, RawMessage
from spendstream.worker.schema import migrate


def cpu_us(action: Callable[[], object], events: int) -> float:
    """CPU µs per event of ``action()``."""
    started = time.process_time()
    action()
    return (time.process_time() - started) / events * 1e6


def messages_of(lines: Sequence[bytes], pack: int) -> list[RawMessage]:
    """``lines`` as Kafka records: NDJSON packs of ``pack`` (plain records when ``pack`` is 1)."""
    if pack == 1:
        return [RawMessage(line, "bench", 0, offset) for offset, line in enumerate(lines)]
    return [
        RawMessage(b"\n".join(lines[start : start + pack]), "bench", 0, start, True)
        for start in range(0, len(lines), pack)
    ]


def slices(messages: Sequence[RawMessage], size: int) -> list[Sequence[RawMessage]]:
    return [messages[start : start + size] for start in range(0, len(messages), size)]


def process_all(processor: BatchProcessor, parts: Sequence[Sequence[RawMessage]]) -> list[Any]:
    return [entry for part in parts for entry in processor.process(part).entries]


def run(args: argparse.Namespace) -> dict[str, Any]:
    lines = [event.to_json_bytes() for event in make_events(args.events, spread_minutes=1)]
    pricer = default_pricer()
    reference, fast = (BatchProcessor(pricer, fast_path=on) for on in (False, True))
    shapes = {
        "packed": slices(messages_of(lines, args.pack), max(1, args.slice // args.pack)),
        "single": slices(messages_of(lines, 1), args.slice),
    }
    now = datetime.now(UTC)
    slow_entries = process_all(reference, shapes["packed"])
    fast_entries = process_all(fast, shapes["packed"])
    if ledger_columns(slow_entries, 1, now) != ledger_columns(fast_entries, 1, now):
        raise SystemExit("the fast path's ledger columns differ from the reference path's")
    client = connect(f"chdb://{tempfile.mkdtemp(prefix='bench-columns-')}", "bench_columns")
    migrate(client)
    writer = LedgerWriter(client, 1)
    scaled_types = writer.ledger_column_types()
    decimal_types = insert_types([kind.name for kind in scaled_types])  # money: ScaledDecimal
    stock_types = [get_from_name(kind.name) for kind in scaled_types]
    figures: dict[str, list[float]] = {}

    def note(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    def chunks(entries: Sequence[LedgerEntry]) -> list[Sequence[LedgerEntry]]:
        return [entries[start : start + args.slice] for start in range(0, len(entries), args.slice)]

    def insert_all(table: str, slices: list[list[list[Any]]], types: Sequence[Any]) -> None:
        for columns in slices:
            client.insert(
                table,
                columns,
                column_names=LEDGER_COLUMNS,
                column_types=types,
                column_oriented=True,
            )

    for table in ("ledger_reference", "ledger_fast", "ledger_bare"):
        client.command(f"CREATE TABLE {table} AS ledger")
    decoder = msgspec.json.Decoder()
    count = len(lines)
    paths = {
        "reference": (reference, slow_entries, False, decimal_types),
        "fast": (fast, fast_entries, True, scaled_types),
    }
    for _ in range(args.runs):
        for shape, parts in shapes.items():
            for name, (processor, _entries, _scaled, _types) in paths.items():
                note(
                    f"{shape}.process_{name}", cpu_us(partial(process_all, processor, parts), count)
                )
        note("raw.msgspec_decode", cpu_us(partial(list, map(decoder.decode, lines)), count))
        built: dict[str, list[list[list[Any]]]] = {}
        for name, (_processor, entries, scaled, _types) in paths.items():
            started = time.process_time()
            built[name] = [ledger_columns(part, 1, now, scaled) for part in chunks(entries)]
            note(f"columns_{name}", (time.process_time() - started) / count * 1e6)
        for name, (_processor, _entries, _scaled, types) in paths.items():
            note(
                f"insert_{name}",
                cpu_us(partial(insert_all, f"ledger_{name}", built[name], types), count),
            )
        bare = partial(insert_all, "ledger_bare", built["reference"], stock_types)
        note("raw.bare_column_insert", cpu_us(bare, count))
    summary = {name: summarise(values, 2) for name, values in figures.items()}
    median = {name: value["median"] for name, value in summary.items()}
    for shape in shapes:
        median[f"{shape}.fast_to_reference"] = ratio(
            median[f"{shape}.process_fast"], median[f"{shape}.process_reference"]
        )
    per_event = {
        path: median[f"packed.process_{path}"]
        + median[f"columns_{path}"]
        + median[f"insert_{path}"]
        for path in ("reference", "fast")
    }
    return {
        "events": count,
        "pack": args.pack,
        "slice_events": args.slice,
        "load_average": os.getloadavg(),
        "figures": summary,
        "medians": median,
        "packed_process_columns_insert_us": per_event,
        "fast_path_share": sum(
            type(entry.event).__name__ == "PackedEvent" for entry in fast_entries
        )
        / len(fast_entries),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.columns", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pack", type=int, default=100, help="events per NDJSON message")
    parser.add_argument("--slice", type=int, default=5_000, help="events per processed slice")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "columns", help="results dir")
    args = parser.parse_args(argv)
    results = run(args)
    print(json.dumps(results["medians"], indent=2))
    print(f"[bench.columns] results: {write_results(results, args.out)}")


if __name__ == "__main__":
    main()
