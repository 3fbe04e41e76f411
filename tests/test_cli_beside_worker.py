"""The CLI beside a real running worker: `export focus` while traffic flows is exact to the
ledger as of its one cutoff (its rows and its check read at two moments and it said "run
again", exit 1, every time), and commands the worker cannot do for it refuse cleanly (exit 2,
what to do) instead of failing on chDB's lock (exit 4)."""

from __future__ import annotations

import csv
import re
import subprocess
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from kafka import KafkaProducer

from spendstream.cli.errors import EXIT_OK, EXIT_USAGE
from spendstream.embedded import TansuBroker
from spendstream.events import UsageEvent
from spendstream.sinks.client import connect
from spendstream.worker.schema import migrate
from tests.support.cli import spendstream_here
from tests.support.ledger_data import fill_ledger, generate
from tests.support.traffic import USAGE_TOPIC
from tests.support.worker import WorkerProcess, wait_until

pytestmark = pytest.mark.integration

PREFILLED = 10_000
AS_OF = re.compile(r"the ledger as of (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")
LEDGER_AS_OF = (
    "SELECT sum(cost_total) FROM ledger FINAL PREWHERE ingested_at <= {cutoff:DateTime64(3)} "
    "WHERE event_time >= {start:DateTime64(3)} AND event_time < {end:DateTime64(3)}"
)


def flow(bootstrap: str, moment: datetime, stop: threading.Event) -> None:
    """Publish small batches of new events at ``moment`` until ``stop``."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    sent = 0
    try:
        while not stop.is_set():
            for i in range(40):
                event = UsageEvent(
                    event_time=moment,
                    provider="openai",
                    model="gpt-4o-mini",
                    input_tokens=1_000 + sent + i,
                    output_tokens=100 + i,
                    tags={"team": f"t{(sent + i) % 7}", "feature": f"f{i % 5}"},
                )
                producer.send(USAGE_TOPIC, event.to_json_bytes())
            producer.flush()
            sent += 40
            stop.wait(0.05)
    finally:
        producer.close()


def test_export_focus_is_exact_as_of_its_cutoff_while_traffic_flows(
    tmp_path: Path,
    broker: TansuBroker,
    chdb_dsn: str,
    worker_config: Path,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    moment = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    month_start = moment.replace(day=1, hour=0, minute=0, second=0)
    month_end = (month_start + timedelta(days=32)).replace(day=1)
    month = f"{moment:%Y-%m}"
    client = connect(chdb_dsn, "spendstream")
    migrate(client)
    # A tag set per event: a FOCUS row each, so the export takes a while, as a real month's.
    prefilled = [
        event.model_copy(update={"tags": {**event.tags, "user": f"u{n}"}})
        for n, event in enumerate(generate(PREFILLED, seed=5, start=month_start))
    ]
    fill_ledger(client, prefilled)
    client.close()
    worker = start_worker()
    stop = threading.Event()
    publisher = threading.Thread(target=flow, args=(broker.bootstrap_servers, moment, stop))
    publisher.start()
    runs: list[tuple[Path, subprocess.CompletedProcess[str]]] = []
    try:
        count = "SELECT count() FROM ledger"
        wait_until(lambda: int(worker.scalar(count)) > PREFILLED, 60, "traffic in the ledger")
        first = int(worker.scalar(count))
        for attempt in range(4):
            out = tmp_path / f"focus-{attempt}.csv"
            runs.append((out, spendstream_here(
                "export", "focus", "--month", month, "--out", str(out),
                "-c", str(worker_config), cwd=tmp_path,
            )))  # fmt: skip
        assert int(worker.scalar(count)) > first  # the worker kept writing meanwhile
    finally:
        stop.set()
        publisher.join()
    exports: list[tuple[datetime, Decimal]] = []
    for out, done in runs:
        assert done.returncode == EXIT_OK, done.stdout + done.stderr  # was: 1, "run again"
        found = AS_OF.search(done.stdout)
        assert found is not None, done.stdout
        with out.open(newline="") as handle:
            billed = sum((Decimal(row["BilledCost"]) for row in csv.DictReader(handle)), Decimal(0))
        exports.append((datetime.fromisoformat(found[1]), billed))
    # Read after the traffic stopped: each file holds exactly the ledger as of its cutoff.
    for cutoff, billed in exports:
        window = {"cutoff": cutoff, "start": month_start, "end": month_end}
        [[total]] = worker.query(LEDGER_AS_OF, window).rows
        assert billed == Decimal(str(total)) > 0
    assert len({billed for _, billed in exports}) == len(exports)  # each saw more traffic


def test_commands_beside_a_running_worker(
    tmp_path: Path, worker_config: Path, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    config = ("-c", str(worker_config))
    bill = tmp_path / "bill.csv"
    bill.write_text(
        "BilledCost,BillingCurrency,ChargePeriodStart,ConsumedQuantity,ConsumedUnit,x_Model\n"
        "0.5,USD,2026-12-01T00:00:00Z,1000,Tokens,gpt-4o-mini\n"
    )
    imported = spendstream_here(
        "reconcile", "import", "--provider", "openai", str(bill), *config, cwd=tmp_path
    )
    # was: chDB "Cannot lock file ... status", a traceback and "internal error", exit 4
    assert imported.returncode == EXIT_USAGE, imported.stdout + imported.stderr
    assert f"a worker ({worker.url}) holds the chDB directory" in imported.stderr
    assert "reconcile import writes invoice lines, so stop the worker first" in imported.stderr
    assert "Traceback" not in imported.stderr + imported.stdout
    assert int(worker.scalar("SELECT count() FROM invoice_lines")) == 0
    # An empty window through the worker: an empty answer, not "internal error" (exit 4).
    empty = ("--since", "2020-01-01", "--until", "2020-02-01")
    spend = spendstream_here("customers", "spend", *empty, *config, cwd=tmp_path)
    assert spend.returncode == EXIT_OK, spend.stderr
