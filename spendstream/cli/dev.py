"""``spendstream dev``: broker + worker + chDB + demo traffic on this machine, with a live view."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.live import Live
from rich.table import Table

from spendstream.cli.common import ConfigOption, console, settings_or_exit
from spendstream.config import Settings
from spendstream.demo import DemoTraffic
from spendstream.embedded import TansuBroker, free_port, wait_for_port
from spendstream.sinks.access import WorkerReader

SUMMARY_SQL = (
    "SELECT team, toDecimalString(sum(cost_total), 6) AS cost_usd, sum(events) AS events, "
    "sum(input_tokens + output_tokens) AS tokens FROM rollup_minute FINAL "
    "WHERE window_start >= now() - INTERVAL 15 MINUTE GROUP BY team ORDER BY cost_usd DESC"
)


def start_worker(settings: Settings, config: str | None, log_path: Path) -> subprocess.Popen[bytes]:
    """The worker as a child process (its own chDB owner), configured through the environment."""
    env = dict(os.environ)
    env.update(
        SPENDSTREAM_KAFKA__BOOTSTRAP_SERVERS=settings.kafka.bootstrap_servers,
        SPENDSTREAM_CLICKHOUSE__DSN=settings.clickhouse.dsn,
        SPENDSTREAM_WORKER__WEB_PORT=str(settings.worker.web_port),
        SPENDSTREAM_LOG__FORMAT="json",
    )
    command = [sys.executable, "-m", "spendstream", "worker"]
    if config:
        command += ["--config", config]
    with log_path.open("ab") as log_file:
        return subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with code {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"worker not healthy at {url} after {timeout_s:.0f}s")


def summary_table(reader: WorkerReader, published: int) -> Table:
    table = Table(title=f"Spend, last 15 minutes (from the ledger) — {published} events published")
    for name in ("team", "cost_usd", "events", "tokens"):
        table.add_column(name, justify="left" if name == "team" else "right")
    try:
        for row in reader.query(SUMMARY_SQL).rows:
            table.add_row(*(str(value) for value in row))
    except Exception as exc:  # the worker may be restarting; show why instead of crashing
        table.caption = f"query failed: {exc}"
    return table


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def dev(
    demo: Annotated[bool, typer.Option("--demo/--no-demo", help="publish demo traffic")] = False,
    rate: Annotated[float, typer.Option(help="demo events per second")] = 50.0,
    data_dir: Annotated[Path, typer.Option(help="where chDB data and logs live")] = Path("data"),
    duration: Annotated[float, typer.Option(help="stop after N seconds (0: until Ctrl-C)")] = 0.0,
    config: ConfigOption = None,
) -> None:
    """Run everything on this machine: Tansu broker, worker, chDB storage (and demo traffic)."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # The embedded default: chDB under the data directory, whatever the config says.
    dsn = f"chdb://{data_dir / 'clickhouse'}"
    broker = TansuBroker(log_path=data_dir / "tansu.log").start()
    web_port = free_port()
    settings = settings_or_exit(
        config,
        kafka={"bootstrap_servers": broker.bootstrap_servers},
        clickhouse={"dsn": dsn},
        worker={"web_port": web_port},
    )
    url = f"http://127.0.0.1:{web_port}"
    worker = start_worker(settings, config, data_dir / "worker.log")
    traffic: DemoTraffic | None = None
    try:
        wait_for_port("127.0.0.1", web_port, timeout_s=60)
        wait_healthy(url, worker)
        console.print(f"[green]broker[/green]   {broker.bootstrap_servers} (Tansu, memory only)")
        console.print(f"[green]worker[/green]   {url}/metrics  (log: {data_dir / 'worker.log'})")
        console.print(f"[green]ledger[/green]   {dsn}")
        console.print(
            "[green]query[/green]    spendstream sql 'SELECT ...'  |  spendstream report --by team"
        )
        if demo:
            traffic = DemoTraffic(
                _kafka_publisher(broker.bootstrap_servers, settings), rate=rate
            ).start()
        reader = WorkerReader(url)
        started = time.monotonic()
        with Live(summary_table(reader, 0), console=console, refresh_per_second=1) as live:
            while not duration or time.monotonic() - started < duration:
                if worker.poll() is not None:
                    raise RuntimeError(f"worker exited with code {worker.returncode}")
                time.sleep(2)
                live.update(summary_table(reader, traffic.sent if traffic else 0))
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        if traffic:
            traffic.stop()
        stop_process(worker)
        broker.stop()
    console.print(f"stopped. Data kept in {data_dir}; try: spendstream report --by team")


def _kafka_publisher(bootstrap: str, settings: Settings):  # type: ignore[no-untyped-def]
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks="all")
    topic = settings.kafka.usage_topic
    return lambda event: producer.send(topic, event.to_json_bytes())
