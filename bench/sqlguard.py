"""The free-SQL guard's cost per query (issue 24): ``python -m bench.sqlguard [--runs N]``.

For a short, a typical and a long (~6 KB) statement, on chDB in this process and on chDB
serving HTTP: the guard's check (ClickHouse's ``parseQueryToJSON`` round trip plus the walk of
the tree), the walk alone, and the query itself on the API's read-only session over a small
ledger (2 000 generated events), p50 of ``--runs`` each. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import percentile
from spendstream.api.readers import limits
from spendstream.config import ApiSettings
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from spendstream.sinks.sqlguard import SqlGuard, check_tree, reader_parser
from spendstream.worker.schema import migrate
from tests.support.chdb_http import ChdbHttpServer
from tests.support.ledger_data import fill_ledger, generate

STATEMENTS = {
    "short": "SELECT count() FROM ledger FINAL",
    "typical": (
        "WITH daily AS (SELECT toStartOfDay(event_time) AS day, team, sum(cost_total) AS cost "
        "FROM ledger FINAL WHERE team IN (SELECT team FROM ledger WHERE model LIKE 'gpt%') "
        "GROUP BY day, team) SELECT day, team, cost, sum(cost) OVER (PARTITION BY team "
        "ORDER BY day) AS running, quantiles(0.5, 0.9)(cost) OVER (PARTITION BY team) AS q "
        "FROM daily ORDER BY team, day"
    ),
    "long": "SELECT count() FROM ledger WHERE "
    + " OR ".join(f"(team = 'team-{i}' AND input_tokens > {i})" for i in range(150)),
}


def p50_ms(runs: int, action: Callable[[], object]) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        timings.append((time.perf_counter() - started) * 1000)
    return round(percentile(timings, 0.5), 3)


def measure(dsn: str, runs: int) -> dict[str, Any]:
    writer = connect(dsn, "spendstream")
    migrate(writer)
    fill_ledger(writer, generate(2000))
    reader = ClientReader(connect(dsn, "spendstream", settings=limits(ApiSettings())))
    parse = reader_parser(reader)
    guard = SqlGuard(parse, "spendstream")
    out: dict[str, Any] = {}
    for name, sql in STATEMENTS.items():
        tree = json.loads(parse(sql))
        check = p50_ms(runs, lambda sql=sql: guard.check(sql))  # type: ignore[misc]
        walk = p50_ms(runs, lambda tree=tree: check_tree(tree, "spendstream"))  # type: ignore[misc]
        query = p50_ms(runs, lambda sql=sql: reader.query(sql))  # type: ignore[misc]
        out[name] = {
            "chars": len(sql),
            "check_ms": check,
            "walk_ms": walk,
            "query_ms": query,
            "guarded_vs_query": round((check + query) / query, 2),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {"chdb": measure(f"chdb://{Path(tmp) / 'chdb'}", args.runs)}
        with ChdbHttpServer(Path(tmp) / "http") as server:
            results["http"] = measure(server.dsn, args.runs)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
