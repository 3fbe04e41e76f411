"""What ClickHouse does per batch: the worker's statements and merges, from the server's own logs.

``bench.scale workers --statements`` runs the chDB HTTP server with ``system.query_log`` and
``system.part_log`` on (``tests.support.chdb_http``, ``query_log=True``) and, once the run is
over, splits the server's CPU over the measured interval by statement kind (normalised text:
values and literals stripped) and by background part work (merges per table), so the fixed
cost of a batch can be read per statement. Logging costs CPU itself: compare rates with runs
made without it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

# User + system CPU of every thread a statement used (its own and its pipeline's).
CPU = "ProfileEvents['UserTimeMicroseconds'] + ProfileEvents['SystemTimeMicroseconds']"

BY_STATEMENT = f"""
SELECT substring(any(normalizeQuery(query)), 1, {{width:UInt32}}) AS kind,
       count() AS runs,
       sum({CPU}) / 1e6 AS cpu_s,
       sum(query_duration_ms) / 1e3 AS wall_s,
       sum(read_rows) AS read_rows
FROM system.query_log
WHERE type = 'QueryFinish'
  AND event_time_microseconds BETWEEN {{lo:DateTime64(6)}} AND {{hi:DateTime64(6)}}
  AND query NOT LIKE '%system.query_log%' AND query NOT LIKE '%system.part_log%'
GROUP BY normalized_query_hash
ORDER BY cpu_s DESC
"""

BY_PART_EVENT = f"""
SELECT concat(toString(event_type), ' ', table) AS kind,
       count() AS runs,
       sum({CPU}) / 1e6 AS cpu_s,
       sum(duration_ms) / 1e3 AS wall_s,
       sum(read_rows) AS read_rows
FROM system.part_log
WHERE event_time_microseconds BETWEEN {{lo:DateTime64(6)}} AND {{hi:DateTime64(6)}}
  AND event_type != 'NewPart'
GROUP BY kind
ORDER BY cpu_s DESC
"""


def statement_costs(
    client: Any, lo: datetime, hi: datetime, batches: int, events: int, width: int = 110
) -> dict[str, Any]:
    """Statements and part events between ``lo`` and ``hi`` (server time, UTC): count, CPU
    seconds, per batch and µs per event, most expensive first."""
    client.command("SYSTEM FLUSH LOGS")
    params = {"lo": lo, "hi": hi, "width": width}
    rows: list[dict[str, Any]] = []
    for source, sql in (("query", BY_STATEMENT), ("part", BY_PART_EVENT)):
        for kind, runs, cpu_s, wall_s, read in client.query(sql, parameters=params).result_rows:
            rows.append(
                {
                    "source": source,
                    "kind": " ".join(str(kind).split()),
                    "runs": int(runs),
                    "per_batch": round(int(runs) / max(batches, 1), 2),
                    "cpu_s": round(float(cpu_s), 3),
                    "cpu_ms_per_batch": round(float(cpu_s) * 1e3 / max(batches, 1), 2),
                    "cpu_us_per_event": round(float(cpu_s) * 1e6 / max(events, 1), 2),
                    "wall_s": round(float(wall_s), 3),
                    "read_rows_per_event": round(int(read) / max(events, 1), 2),
                }
            )
    rows.sort(key=lambda row: -row["cpu_s"])
    return {
        "logged_cpu_s": round(sum(row["cpu_s"] for row in rows), 3),
        "statements": rows,
    }


def table(costs: dict[str, Any], top: int = 30) -> str:
    """The rows as a Markdown table (most expensive first)."""
    lines = [
        "| statement or part event | runs | per batch | CPU ms per batch | µs per event |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in costs["statements"][:top]:
        lines.append(
            f"| `{row['kind'][:100]}` | {row['runs']} | {row['per_batch']} "
            f"| {row['cpu_ms_per_batch']} | {row['cpu_us_per_event']} |"
        )
    return "\n".join(lines)
