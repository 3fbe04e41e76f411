"""The ledger read behind time-less re-sent events (``sinks.first_times``), on a kept ledger.

    .venv/bin/python -m bench.first_times --data DIR [--database bench_explain] [--runs 7]

``DIR`` is a chDB directory holding a generated ledger (``bench.explain --data DIR``; read
only here, but chDB locks it: use a copy). One read per batch holding events without
``event_time``: ``ids`` of them, half stored in the lookback (ids of the last day), half never
stored, within lookbacks of 1, 7 and 30 days before the ledger's newest event; each with the
``bloom_filter`` index and without (``use_skip_indexes = 0``). Reported: p50 and max wall ms
over ``runs`` (after one warm-up read; new ids each read) and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, timedelta
from typing import Any

from spendstream.sinks.client import connect
from spendstream.sinks.first_times import FIRST_TIMES_SQL


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.first_times")
    parser.add_argument("--data", required=True)
    parser.add_argument("--database", default="bench_explain")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    client = connect(f"chdb://{args.data}", args.database)
    rows, newest = client.query("SELECT count(), max(event_time) FROM ledger").result_rows[0]
    newest = newest.replace(tzinfo=UTC)
    recent = [
        str(row[0])
        for row in client.query(
            "SELECT event_id FROM ledger WHERE event_time >= {t:DateTime64(3, 'UTC')} "
            "ORDER BY cityHash64(event_id) LIMIT {n:UInt32}",
            parameters={"t": newest - timedelta(days=1), "n": 500 * (args.runs + 1)},
        ).result_rows
    ]
    report: dict[str, Any] = {"ledger_rows": rows, "load": os.getloadavg()}
    for days in (1, 7, 30):
        since = newest - timedelta(days=days)
        in_range = client.query(
            "SELECT count() FROM ledger WHERE event_time >= {t:DateTime64(3, 'UTC')}",
            parameters={"t": since},
        ).result_rows[0][0]
        report[f"rows_in_{days}d"] = in_range
        for count in (1, 10, 100, 1000):
            for index in (True, False):
                settings = {} if index else {"use_skip_indexes": 0}
                walls = []
                for run in range(args.runs + 1):
                    # New ids every read, as every batch brings: ClickHouse's query condition
                    # cache would otherwise answer a repeated IN list from memory.
                    half = max(1, count // 2)
                    ids = recent[run * half : (run + 1) * half] + [
                        f"absent-{index}-{run}-{n}" for n in range(count // 2)
                    ]
                    started = time.perf_counter()
                    found = client.query(
                        FIRST_TIMES_SQL, parameters={"ids": ids, "since": since}, settings=settings
                    ).result_rows
                    walls.append((time.perf_counter() - started) * 1000)
                    assert len(found) == half, (len(found), half)
                walls = walls[1:]
                key = f"{days}d_{count}ids_{'index' if index else 'noindex'}"
                report[key] = (round(statistics.median(walls), 1), round(max(walls), 1))
                print(key, report[key], flush=True)
    report["load_after"] = os.getloadavg()
    print(report)
    return report


if __name__ == "__main__":
    main()
