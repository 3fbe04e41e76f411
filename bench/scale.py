"""Scale benchmarks (docs/benchmarks-scale.md): report, audit and budget-figure queries over a
generated ledger with its rollups, on-disk bytes per event, and evaluator failover after SIGKILL.

    .venv/bin/python -m bench.scale queries --rows 10000000 --runs 20 [--data DIR]
    .venv/bin/python -m bench.scale failover --trials 20
    .venv/bin/python -m bench.scale workers --events 100000 --processes 2 [--pack 100] [--profile F]

``queries`` generates the ledger inside chDB (``bench.reports.generate``), rebuilds every rollup
from it (``sinks.ledger.rebuild_rollups``), then times each query ``runs`` times (p50/p95, ms),
and reads compressed and uncompressed bytes per table from ``system.parts``.
``workers`` runs 1..n real worker processes on one chDB HTTP server over pre-produced events
(one per message, or ``--pack`` per NDJSON message): events/s and CPU µs per event.
``failover`` starts a chDB HTTP server and three processes each running the worker's
:class:`~spendstream.leadership.Elector`; it SIGKILLs the holder and times until another
process holds a new term (what a worker's alerting waits for), ``trials`` times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench import raw
from bench.common import RESULTS_DIR, machine_facts, make_events, percentile, write_results
from bench.profile import py_spy
from bench.reports import SPAN_DAYS, generate
from bench.statements import statement_costs
from bench.statements import table as statement_table
from bench.worker import BUDGETS as WORKER_BUDGETS
from bench.worker import write_worker_config
from spendstream.alerts.config import AlertsConfig, BudgetConfig
from spendstream.alerts.figures import compute_figures
from spendstream.sinks.access import ClientReader
from spendstream.sinks.audits import AUDITS
from spendstream.sinks.client import connect
from spendstream.sinks.queries import spend_report_sql
from spendstream.worker.schema import migrate

TABLES = (
    "ledger",
    "rollup_minute",
    "rollup_hour",
    "rollup_day",
    "rollup_hour_lean",
    "rollup_day_lean",
    "rollup_hour_user",
    "rollup_day_user",
)
DAY_EVENTS = "SELECT sum(events) FROM rollup_day FINAL"
BUDGETS = (
    {"name": "all-month", "scope": {}, "period": "month", "limit": "100000"},
    {"name": "search-month", "scope": {"team": "search"}, "period": "month", "limit": "5000"},
    {"name": "support-day", "scope": {"team": "support"}, "period": "day", "limit": "500"},
    {"name": "one-user-week", "scope": {"user": "user-7"}, "period": "week", "limit": "50"},
)


def stats(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 0.5), 1), "p95": round(percentile(values, 0.95), 1)}


def disk_usage(client: Any, rows: int) -> dict[str, Any]:
    """Compressed/uncompressed bytes and rows per table, and compressed bytes per ledger event."""
    found = client.query(
        "SELECT table, sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes) "
        "FROM system.parts WHERE active AND database = currentDatabase() GROUP BY table"
    ).result_rows
    tables = {
        str(t): {"rows": int(r), "compressed": int(c), "uncompressed": int(u)}
        for t, r, c, u in found
        if t in TABLES
    }
    total = sum(t["compressed"] for t in tables.values())
    return {
        "tables": tables,
        "bytes_per_event_ledger": round(tables["ledger"]["compressed"] / rows, 1),
        "bytes_per_event_all": round(total / rows, 1),
    }


def totals(client: Any) -> dict[str, str]:
    """Total cost in the ledger and in each day rollup: equal to the last digit, or the
    benchmark measures wrong tables."""
    found = {}
    for table in ("ledger", "rollup_day", "rollup_day_lean", "rollup_day_user"):
        found[table] = str(
            client.query(f"SELECT sum(cost_total) FROM {table} FINAL").result_rows[0][0]
        )
    return found


def prepare(
    client: Any, rows: int, data: Path, span_days: int = SPAN_DAYS
) -> tuple[datetime, dict[str, Any]]:
    """The generated ledger's end and how it was made: generated and its rollups rebuilt now,
    or read back from ``data/prepared.json`` when an earlier run prepared ``data``."""
    migrate(client)
    marker = data / "prepared.json"
    if marker.exists():
        made = json.loads(marker.read_text())
        if made["rows"] != rows:
            raise SystemExit(f"{data} holds {made['rows']} rows, not {rows}: use another --data")
        return datetime.fromisoformat(made["end"]), {**made, "reused": True}
    end = datetime.now(UTC).replace(microsecond=0)
    made = generate(client, rows, end, span_days)  # and every rollup rebuilt from it
    started = time.perf_counter()
    client.command("OPTIMIZE TABLE ledger FINAL")  # as after background merges settle
    made["optimize_s"] = round(time.perf_counter() - started, 1)
    made["end"] = end.isoformat()
    made["totals_usd"] = totals(client)
    if len(set(made["totals_usd"].values())) != 1:
        raise SystemExit(f"rollups differ from the ledger: {made['totals_usd']}")
    marker.write_text(json.dumps(made))
    return end, made


def run_queries(
    rows: int, runs: int, data: Path | None, span_days: int = SPAN_DAYS
) -> dict[str, Any]:
    """Time every query over a generated ledger in ``data`` (a fresh temporary directory when
    None; an existing one is reused as prepared, so 100 M rows are generated once)."""
    data = data or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    client = connect(f"chdb://{data}", "bench_scale")
    end, made = prepare(client, rows, data, span_days)
    # A period that starts and ends mid-hour: edges from the ledger, the rest from rollups.
    since = end - timedelta(days=made.get("span_days", SPAN_DAYS), minutes=17)
    until = end
    queries: dict[str, tuple[str, dict[str, Any]]] = {
        name: (audit.sql, audit.parameters(since, until)) for name, audit in AUDITS.items()
    }
    for by in (["team", "model"], ["user"], ["feature"]):
        queries[f"spend_report({','.join(by)})"] = spend_report_sql(by, since, until)
    timings: dict[str, list[float]] = {name: [] for name in queries}
    timings["budget_figures(4 budgets)"] = []
    budgets = [BudgetConfig.model_validate(b) for b in BUDGETS]
    alerts = AlertsConfig()
    reader = ClientReader(client)
    for _ in range(runs):
        for name, (sql, parameters) in queries.items():
            began = time.perf_counter()
            client.query(sql, parameters=parameters)
            timings[name].append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        figures = compute_figures(reader, budgets, alerts, end)
        timings["budget_figures(4 budgets)"].append((time.perf_counter() - began) * 1000)
    assert runs == 0 or figures[0].spend > Decimal(0)
    return {
        **made,
        "disk": disk_usage(client, rows),
        "query_ms": {name: stats(values) for name, values in timings.items() if values},
        "query_ms_runs": timings,
    }


ELECTOR = """
import sys, time
from spendstream.leadership import Elector, LeaseStore
from spendstream.sinks.client import connect

class Say:
    def start(self, fence):
        print(f"lead {fence.term} {time.time():.3f}", flush=True)
    def stop(self):
        pass

elector = Elector(LeaseStore(connect(sys.argv[1], "spendstream")), "evaluator", [Say()],
                  ttl_s=float(sys.argv[2]), renew_every_s=float(sys.argv[3]))
elector.run()
"""


def run_failover(trials: int, ttl_s: float, renew_s: float) -> dict[str, Any]:
    from tests.support.chdb_http import ChdbHttpServer  # dev tooling: chDB serving HTTP

    work = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    server = ChdbHttpServer(work / "clickhouse").start()
    migrate(connect(server.dsn, "spendstream"))
    procs: list[tuple[subprocess.Popen[str], Path]] = []

    def spawn() -> None:
        out = work / f"elector-{len(procs)}.log"
        handle = out.open("w")
        args = [sys.executable, "-c", ELECTOR, server.dsn, str(ttl_s), str(renew_s)]
        procs.append((subprocess.Popen(args, stdout=handle, text=True), out))

    def leads() -> list[tuple[int, float, int]]:
        found = []
        for index, (_, out) in enumerate(procs):
            for line in out.read_text().splitlines():
                if line.startswith("lead "):
                    _, term, at = line.split()
                    found.append((int(term), float(at), index))
        return sorted(found)

    samples: list[float] = []
    try:
        for _ in range(3):
            spawn()
        while not leads():
            time.sleep(0.05)
        for _ in range(trials):
            term, _, holder = leads()[-1]
            time.sleep(renew_s * 2)  # a few renewals in, as in steady state
            procs[holder][0].kill()
            killed = time.time()
            spawn()  # keep three competitors
            while leads()[-1][0] == term:
                time.sleep(0.01)
            samples.append(leads()[-1][1] - killed)
    finally:
        for proc, _ in procs:
            proc.kill()
            proc.wait()
        server.stop()
    return {
        "trials": trials,
        "lease_ttl_s": ttl_s,
        "renew_every_s": renew_s,
        "failover_s": {
            "p50": round(percentile(samples, 0.5), 2),
            "p99": round(percentile(samples, 0.99), 2),
            "max": round(max(samples), 2),
        },
        "runs": [round(s, 2) for s in samples],
    }


def sample(pid: int, out: Path, rate: int = 200) -> subprocess.Popen[bytes]:
    """py-spy sampling the thread of ``pid`` holding the GIL (its Python CPU) until SIGINT;
    raw stacks to ``out``."""
    binary = py_spy()
    if binary is None:
        raise SystemExit("--profile needs py-spy in the venv")
    args = [binary, "record", "--gil", "--nonblocking", "-p", str(pid), "-f", "raw"]
    args += ["-r", str(rate), "-o", str(out)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_workers(
    count: int,
    processes: int,
    pack: int,
    profile: Path | None = None,
    statements: bool = False,
) -> dict[str, Any]:
    """``processes`` workers (one group) on chDB over HTTP drain ``count`` pre-produced events
    (``pack`` per message; 1: one event per message). Steady rate from the first ledger row;
    CPU µs per event of the workers and of the ClickHouse server over that interval.
    ``profile``: py-spy samples the first worker over that interval, every thread not idle
    (raw stacks to that file; ``bench.hotpath`` splits them into parts). ``statements``: the
    server logs every statement, and the result splits its CPU per statement kind
    (``bench.statements``)."""
    from spendstream.embedded import TansuBroker
    from tests.support.chdb_http import ChdbHttpServer
    from tests.support.worker import WorkerProcess

    work = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    payloads = [event.to_json_bytes() for event in make_events(count, spread_minutes=1)]
    with TansuBroker(log_path=work / "tansu.log") as broker:
        server = ChdbHttpServer(work / "clickhouse", query_log=statements).start()
        costs: dict[str, Any] = {}
        try:
            topic = f"bench.scale.{time.time_ns()}"
            messages = raw.pack(payloads, pack) if pack > 1 else payloads
            asyncio.run(raw.produce(broker.bootstrap_servers, topic, messages, ndjson=pack > 1))
            config = write_worker_config(
                work / "spendstream.toml",
                broker.bootstrap_servers,
                server.dsn,
                topic,
                WORKER_BUDGETS,
            )
            env = {"SPENDSTREAM_WORKER__SESSION_TIMEOUT_S": "6"}
            workers = [
                WorkerProcess(config, work / f"worker-{i}.log", env=env) for i in range(processes)
            ]
            for each in workers:
                each.start()
            pids = [w.process.pid for w in workers if w.process] + [server.process.pid]  # type: ignore[union-attr]
            # Polled on the server, not through the worker's API: its CPU stays the worker's own.
            server_client = connect(server.dsn, "spendstream")
            first_at, first_rows, cpu0 = 0.0, 0, [0.0] * len(pids)
            spy: subprocess.Popen[bytes] | None = None
            while True:
                rows = int(server_client.query("SELECT count() FROM ledger").result_rows[0][0])
                now = time.perf_counter()
                if rows and not first_at:
                    first_at, first_rows, cpu0 = now, rows, [cpu_seconds(p) for p in pids]
                    first_utc = datetime.now(UTC)
                    spy = sample(pids[0], profile) if profile else None
                if (
                    rows >= count
                    and int(server_client.query(DAY_EVENTS).result_rows[0][0]) >= count
                ):
                    done_at, cpu1 = time.perf_counter(), [cpu_seconds(p) for p in pids]
                    done_utc = datetime.now(UTC)
                    if spy is not None:
                        spy.send_signal(signal.SIGINT)  # py-spy writes its stacks and exits
                        spy.wait(60)
                    break
                time.sleep(0.05)
            exact = int(workers[0].scalar("SELECT count() FROM ledger FINAL")) == count
            written = [w.metric("spendstream_batches_written") for w in workers]
            for each in workers:
                each.stop()
            if statements:
                batches = int(sum(w or 0 for w in written))
                costs = statement_costs(
                    server_client, first_utc, done_utc, batches, count - first_rows
                )
        finally:
            server.stop()
    drained = count - first_rows
    used = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
    return {
        "events": count,
        "events_per_message": pack,
        "processes": processes,
        "events_per_s": round(drained / (done_at - first_at)),
        "worker_cpu_us_per_event": round(sum(used[:-1]) / drained * 1e6, 1),
        "clickhouse_cpu_us_per_event": round(used[-1] / drained * 1e6, 1),
        "batches_written_per_worker": written,
        "exact": exact,
        **costs,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    parser.add_argument("what", choices=("queries", "failover", "workers"))
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--pack", type=int, default=1)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--data", type=Path, help="queries: chDB directory, kept and reused")
    parser.add_argument("--span-days", type=int, default=SPAN_DAYS, help="queries: days of data")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where results go")
    parser.add_argument("--profile", type=Path, help="workers: py-spy raw stacks to this file")
    parser.add_argument(
        "--statements", action="store_true", help="workers: CPU per ClickHouse statement kind"
    )
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--ttl", type=float, default=5.0)
    parser.add_argument("--renew", type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.what == "queries":
        result = run_queries(args.rows, args.runs, args.data, args.span_days)
    elif args.what == "workers":
        result = run_workers(args.events, args.processes, args.pack, args.profile, args.statements)
    else:
        result = run_failover(args.trials, args.ttl, args.renew)
    results = {"machine": machine_facts(), "params": vars(args), "stages": {args.what: result}}
    path = write_results(results, args.out)
    hidden = ("query_ms_runs", "runs", "statements")
    summary = {k: v for k, v in result.items() if k not in hidden}
    print(path)
    print(json.dumps(summary, indent=1, default=str))
    if "statements" in result:
        print(statement_table(result))
    return results


if __name__ == "__main__":
    main()
