"""What the ledger's background merges cost per event at a steady stream, per MergeTree setting.

    .venv/bin/python -m bench.ledger_merges --prefill 1000000 --batches 300 \
        --variant "" --variant "merge_selector_base=20" --rounds 2

Each run (a child process: chDB opens one directory per process) migrates a fresh directory,
applies the variant's settings to the ledger (``ALTER TABLE ledger MODIFY SETTING``), fills one
day with ``--prefill`` events in 50,000-event INSERTs (a busy day's big parts), waits for its
merges, then writes ``--batches`` batches of ``--batch`` events at ``--pace`` events/s through
``LedgerWriter.insert`` (the worker's INSERT) and waits until the ledger has no merge running.
Reported from ``system.part_log`` over the stream and its tail: the merges' CPU, rows read and
written per streamed event (write amplification), the INSERTs' CPU from ``system.query_log``,
this process's CPU (less the column build) and the ledger's active parts at the end. Variants
are run alternated, ``--rounds`` times each.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, machine_facts, write_results
from bench.statements import CPU

MERGES = f"""
SELECT count(), sum({CPU}), sum(read_rows), sum(rows)
FROM system.part_log
WHERE table = 'ledger' AND event_type = 'MergeParts'
  AND event_time_microseconds >= {{lo:DateTime64(6)}}
"""
INSERTS = f"""
SELECT count(), sum({CPU})
FROM system.query_log
WHERE type = 'QueryFinish' AND query LIKE 'INSERT INTO `ledger`%'
  AND event_time_microseconds >= {{lo:DateTime64(6)}}
"""


def one_run(args: argparse.Namespace, variant: str, data: Path) -> dict[str, Any]:
    """A fresh ledger with ``variant``'s settings: the figures of the module doc."""
    from bench.dayfill import DAY, stream_entries
    from bench.dayfill_paced import LOGS_CONFIG, server_time
    from spendstream.sinks.client import connect
    from spendstream.sinks.entry import ledger_columns
    from spendstream.sinks.ledger import LedgerWriter
    from spendstream.worker.schema import migrate

    config = data.with_name("logs-config.xml")
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(LOGS_CONFIG)
    client = connect(f"chdb://{data}", "merges", chdb_options={"config-file": str(config)})
    migrate(client)
    if variant:
        client.command(f"ALTER TABLE ledger MODIFY SETTING {variant}")
    writer = LedgerWriter(client, 1)
    start = DAY + timedelta(hours=12)
    step = timedelta(seconds=1 / args.pace)
    for chunk in range(0, args.prefill, 50_000):
        count = min(50_000, args.prefill - chunk)
        times = [DAY + timedelta(hours=12) * (chunk + i) / args.prefill for i in range(count)]
        writer.insert(stream_entries("fill", times, 50, seed=chunk))
    wait_for_merges(client)
    batches = [
        stream_entries("s", [start + step * (k * args.batch + i) for i in range(args.batch)], 50, k)
        for k in range(args.batches)
    ]
    lo = server_time(client)
    cpu0, wall0, build = time.process_time(), time.perf_counter(), 0.0
    for k, batch in enumerate(batches):
        waiting = wall0 + (k + 1) * args.batch / args.pace - time.perf_counter()
        if waiting > 0:
            time.sleep(waiting)
        cpu = time.process_time()
        ledger_columns(batch, 1, datetime.now(UTC), scaled_money=True)  # timed apart, subtracted
        build += time.process_time() - cpu
        writer.insert(batch)
    stream_s = time.perf_counter() - wall0
    wait_for_merges(client)
    cpu = time.process_time() - cpu0 - build
    client.command("SYSTEM FLUSH LOGS")
    events = args.batch * args.batches
    merges, merge_us, read, written = client.query(MERGES, parameters={"lo": lo}).result_rows[0]
    inserts, insert_us = client.query(INSERTS, parameters={"lo": lo}).result_rows[0]
    parts = client.query(
        "SELECT count(), sum(rows), groupArray(part_type) FROM system.parts "
        "WHERE active AND table = 'ledger' AND database = currentDatabase()"
    ).result_rows[0]
    reads = {name: fastest_read_ms(client, sql, start) for name, sql in READS.items()}
    client.close()
    return {
        "variant": variant or "(defaults)",
        "stream_s": round(stream_s, 1),
        "merges": int(merges),
        "merge_cpu_us_per_event": round(int(merge_us) / events, 2),
        "merge_read_rows_per_event": round(int(read) / events, 2),
        "merge_written_rows_per_event": round(int(written) / events, 2),
        "insert_cpu_us_per_event": round(int(insert_us) / events, 2),
        "inserts": int(inserts),
        "process_cpu_us_per_event": round(cpu * 1e6 / events, 2),
        "active_parts": int(parts[0]),
        "compact_parts": sum(1 for kind in parts[2] if kind == "Compact"),
        "read_cpu_ms": reads,
    }


# Reads of the ledger as the product makes them (``FINAL``): what more parts cost.
READS = {
    "day_by_team": "SELECT team, sum(cost_total) FROM ledger FINAL "
    "WHERE event_time >= {day:DateTime64(3)} - INTERVAL 12 HOUR GROUP BY team",
    "stream_last_10_s_by_team_model": "SELECT team, model, sum(cost_total), count() "
    "FROM ledger FINAL WHERE event_time >= {day:DateTime64(3)} + INTERVAL 50 SECOND "
    "GROUP BY team, model",
}


def fastest_read_ms(client: Any, sql: str, start: datetime, repeat: int = 5) -> float:
    """This process's CPU ms for ``sql`` (chDB in-process), the fastest of ``repeat``."""
    times = []
    for _ in range(repeat):
        cpu = time.process_time()
        client.query(sql, parameters={"day": start})
        times.append(time.process_time() - cpu)
    return round(min(times) * 1e3, 1)


def wait_for_merges(client: Any, quiet_s: float = 2.0, limit_s: float = 300.0) -> None:
    """Until no merge of the ledger has run for ``quiet_s`` (or ``limit_s`` has passed)."""
    deadline, quiet_since = time.monotonic() + limit_s, time.monotonic()
    while time.monotonic() < deadline:
        busy = client.command(
            "SELECT count() FROM system.merges WHERE table = 'ledger' "
            "AND database = currentDatabase()"
        )
        if int(str(busy)):
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger_merges")
    parser.add_argument("--prefill", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--pace", type=float, default=10_000.0)
    parser.add_argument("--variant", action="append", default=None, help="k=v,... ('' = none)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "ledger_merges")
    args = parser.parse_args(argv)
    if args.child is not None:  # one run, in this process; its figures as one JSON line
        with tempfile.TemporaryDirectory(prefix="merges-") as tmp:
            print(json.dumps(one_run(args, args.child, Path(tmp) / "clickhouse")), flush=True)
        return {}
    runs = []
    for round_ in range(args.rounds):
        for variant in args.variant or [""]:
            command = [sys.executable, "-m", "bench.ledger_merges", *child_args(args), "--child"]
            done = subprocess.run([*command, variant], capture_output=True, text=True, check=True)
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            figures["round"] = round_
            runs.append(figures)
            print(f"[ledger_merges] {figures}", flush=True)
    out = {"machine": machine_facts(), "args": vars(args) | {"out": str(args.out)}, "runs": runs}
    print(f"[ledger_merges] results: {write_results(out, args.out)}")
    return out


def child_args(args: argparse.Namespace) -> list[str]:
    return [
        f"--prefill={args.prefill}",
        f"--batches={args.batches}",
        f"--batch={args.batch}",
        f"--pace={args.pace}",
    ]


if __name__ == "__main__":
    main()
