"""Quotas hold when the ledger lags: three SDK replicas run away ($0.05 calls, ~50 a second
each, against a $5/day per-user quota) while the real worker is still working through another
team's burst of single-event messages on the same partition. Each process keeps counting its
own calls until a decision's completeness point (stored offsets) has passed them, so the total
stays within the documented bound L + (P - 1) x L + P x T x c, however far the worker lags.
Then an app without the SDK admits and records through the worker's HTTP API behind another
burst: the worker's admission view counts what it ingested, so it stops at L + T x c.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from spendstream.embedded import TansuBroker
from spendstream.producers import Recorder
from tests.support.burst import (
    NICKEL,
    nickel_cost,
    publish_burst,
    runaway_results,
    same_partition_team,
    start_runaway,
    user_quota,
)
from tests.support.worker import WorkerProcess, write_config

pytestmark = pytest.mark.integration

LIMIT = Decimal(5)
PROCESSES, THREADS = 3, 1
HTTP_THREADS = 2
BURST = 40_000  # the issue saw 50,000 and 150,000; enough here for seconds of lag
CONFIG = """
[guardrails]
evaluate_every_s = 1.0
snapshot_every_s = 0.5
stale_after_s = 60.0
""" + user_quota("user-daily", "support", LIMIT)
BOB = {"team": "support", "user": "bob"}
CAROL = {"team": "support", "user": "carol"}


def http_runaway(url: str, token: str, seconds: float) -> tuple[int, int, float]:
    """One caller: ``POST /api/v1/admit``, then ``POST /api/v1/events`` when allowed; returns
    calls allowed, denied, and the UNIX time of the first denial (inf: none)."""
    allowed = denied = 0
    first_denied = float("inf")
    admit = {"model": "gpt-4o", "provider": "openai", "tags": CAROL}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        stop_at = time.time() + seconds
        while time.time() < stop_at:
            if client.post("/api/v1/admit", json=admit).status_code == 200:
                event = {**NICKEL, "tags": CAROL, "event_id": uuid.uuid4().hex}
                answer = client.post("/api/v1/events", json=event)
                assert answer.status_code == 200, answer.text
                allowed += 1
            else:
                denied += 1
                first_denied = min(first_denied, time.time())
            time.sleep(0.02)
    return allowed, denied, first_denied


def spent_by(worker: WorkerProcess, user: str, stored_by: float | None = None) -> Decimal:
    """``user``'s ledger spend; only what was stored by the UNIX time ``stored_by`` if given."""
    sql = f"SELECT sum(cost_total) FROM ledger FINAL WHERE user = '{user}'"
    if stored_by is not None:
        sql += f" AND toUnixTimestamp64Milli(ingested_at) <= {int(stored_by * 1000)}"
    return Decimal(str(worker.scalar(sql)))


@pytest.mark.heavy
def test_runaway_replicas_stay_within_the_bound_while_the_worker_lags(
    tmp_path: Path, broker: TansuBroker, start_worker: Callable[..., WorkerProcess], chdb_dsn: str
) -> None:
    bootstrap = broker.bootstrap_servers
    # The worker's default 10 s session: with the tests' 6 s, "the lag was real" below failed 2
    # of 5 runs under load (once: the ledger held $13.95 of bob's $14.90 at his first denial);
    # why is not understood yet.
    config = write_config(
        tmp_path / "spendstream.toml", bootstrap, chdb_dsn, CONFIG, session_timeout_s=10
    )
    worker = start_worker(config)
    cost = nickel_cost()
    assert cost == Decimal("0.05"), cost
    # bob spent earlier today: the worker knows the key and re-decides it every second while
    # the ledger lags (what made the old clock rule forget each process's own calls).
    with Recorder(bootstrap_servers=bootstrap, spool_dir=str(tmp_path / "warm")) as warm:
        warm.record(**NICKEL, tags=BOB)
    worker.wait_for_ledger_count(1)
    other = same_partition_team("support")
    publish_burst(bootstrap, other, BURST)
    args = ["--threads", str(THREADS), "--seconds", "8", "--pause", "0.02"]
    stats = runaway_results(
        [start_runaway(bootstrap, tmp_path / f"run{i}", BOB, *args) for i in range(PROCESSES)]
    )
    stored_when_done = int(worker.scalar(f"SELECT count() FROM ledger WHERE team = '{other}'"))
    allowed = sum(int(s["allowed"]) for s in stats)
    worker.wait_for_ledger_count(1 + BURST + allowed, timeout_s=600)

    spent = spent_by(worker, "bob")
    # Each process stops itself at the limit by its own count; the others' calls reach it only
    # through the (lagging) ledger: L + (P - 1) x L + P x T x c (docs/guardrails.md).
    bound = LIMIT + (PROCESSES - 1) * LIMIT + PROCESSES * THREADS * cost
    first_denied = min(float(s["first_denied"]) for s in stats if s["first_denied"])
    in_ledger_at_first_denial = spent_by(worker, "bob", stored_by=first_denied)
    print("LAG", spent, bound, stats, stored_when_done, in_ledger_at_first_denial)
    # The lag was real: the processes stopped themselves while the ledger, still working
    # through the burst ahead of bob's calls, held less than the limit for bob.
    assert in_ledger_at_first_denial < LIMIT, in_ledger_at_first_denial
    assert all(int(s["denied"]) > 0 for s in stats), stats
    assert LIMIT <= spent <= bound, (spent, bound, stats)

    # --- HTTP only: the worker's view counts what its ingest endpoint published ---------------
    token = worker.api().post("/tokens", {"name": "carol-app", "role": "service"})["token"]
    publish_burst(bootstrap, other, BURST)
    with ThreadPoolExecutor(HTTP_THREADS) as pool:
        runs = [pool.submit(http_runaway, worker.url, token, 15) for _ in range(HTTP_THREADS)]
        allowed_http = sum(run.result()[0] for run in runs)
        denied_http = sum(run.result()[1] for run in runs)
        first_denied_http = min(run.result()[2] for run in runs)
    worker.wait_for_ledger_count(1 + 2 * BURST + allowed + allowed_http, timeout_s=600)
    spent_http = spent_by(worker, "carol")
    in_ledger = spent_by(worker, "carol", stored_by=first_denied_http)
    print("HTTP", spent_http, allowed_http, denied_http, in_ledger)
    # Denied by the worker's own count of what it ingested, while the ledger lagged behind.
    assert denied_http > 0 and in_ledger < LIMIT, (denied_http, in_ledger)
    assert LIMIT <= spent_http <= LIMIT + HTTP_THREADS * cost, spent_http
