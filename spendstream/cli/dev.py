"""``spendstream dev``: broker + worker + chDB + demo traffic on this machine, with a live view."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from spendstream.cli.common import ConfigOption, console, settings_or_exit
from spendstream.cli.dev_inbox import DevInbox
from spendstream.cli.dev_stop import StopSignals, events_finished, stop_process, wait_drained
from spendstream.config import Settings
from spendstream.demo import DEMO_QUOTAS, DemoTraffic
from spendstream.embedded import TansuBroker, ends_with_this_process, free_port, wait_for_port
from spendstream.errors import SpendstreamError
from spendstream.logs import configure_logging
from spendstream.producers import Recorder
from spendstream.sinks.access import TOKEN_FILE, ApiClient, WorkerReader
from spendstream.sinks.http_call import NoAnswer, exchange

SUMMARY_SQL = (
    "SELECT team, toDecimalString(sum(cost_total), 6) AS cost_usd, sum(events) AS events, "
    "sum(input_tokens + output_tokens) AS tokens FROM rollup_minute FINAL "
    "WHERE window_start >= now() - INTERVAL 15 MINUTE GROUP BY team ORDER BY sum(cost_total) DESC"
)


def start_worker(
    settings: Settings, config: str | None, log_path: Path, extra_env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """The worker as a child process (its own chDB owner), configured through the environment."""
    env = {**os.environ, **extra_env}
    env.update(
        SPENDSTREAM_KAFKA__BOOTSTRAP_SERVERS=settings.kafka.bootstrap_servers,
        SPENDSTREAM_CLICKHOUSE__DSN=settings.clickhouse.dsn,
        SPENDSTREAM_WORKER__WEB_PORT=str(settings.worker.web_port),
        SPENDSTREAM_WORKER__DATA_DIR=settings.worker.data_dir,
        SPENDSTREAM_LOG__FORMAT="json",
    )
    command = [sys.executable, "-m", "spendstream", "worker"]
    if config:
        command += ["--config", config]
    command = ends_with_this_process(command)
    with log_path.open("ab") as log_file:
        # Its own process group: a terminal's Ctrl-C reaches dev only, which stops it in order;
        # if dev itself is killed, the worker gets SIGTERM and stops cleanly on its own.
        return subprocess.Popen(
            command, env=env, stdout=log_file, stderr=subprocess.STDOUT, process_group=0
        )


class WorkerEnded(SpendstreamError):
    """The worker child ended under dev (killed, crashed, refused to start): exit 1, no bug."""

    def __init__(self, code: int, log_path: Path | None) -> None:
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = "a signal"
            how = f"was killed by signal {-code} ({name})"
        else:
            how = f"exited with code {code}"
        super().__init__(f"the worker {how}" + (f"; its log: {log_path}" if log_path else ""))


def wait_healthy(
    url: str,
    process: subprocess.Popen[bytes],
    timeout_s: float = 60.0,
    log_path: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise WorkerEnded(process.returncode, log_path)
        # http.client, not httpx: an httpx.get builds a TLS context (~20 ms of CPU) each poll.
        try:
            if exchange("GET", f"{url}/healthz", timeout_s=1.0).status == 200:
                return
        except NoAnswer:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"worker not healthy at {url} after {timeout_s:.0f}s")


def alerts_table(inbox: DevInbox) -> Table:
    table = Table(
        title=f"Alerts received by the dev inbox ({inbox.count}; all in {inbox.log_path})"
    )
    table.add_column("received")
    table.add_column("alert", overflow="fold")
    for message in reversed(inbox.received):
        table.add_row(message["received_at"][11:19], str(message.get("title", "")))
    return table


def live_view(reader: WorkerReader, published: int, inbox: DevInbox | None) -> Group | Table:
    spend = summary_table(reader, published)
    return Group(spend, alerts_table(inbox)) if inbox else spend


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


def dev(
    demo: Annotated[bool, typer.Option("--demo/--no-demo", help="publish demo traffic")] = False,
    rate: Annotated[float, typer.Option(help="demo events per second")] = 50.0,
    data_dir: Annotated[Path, typer.Option(help="where chDB data and logs live")] = Path("data"),
    duration: Annotated[float, typer.Option(help="stop after N seconds (0: until Ctrl-C)")] = 0.0,
    config: ConfigOption = None,
) -> None:
    """Run everything on this machine: Tansu broker, worker, chDB storage (and demo traffic).

    Ctrl-C (or SIGTERM) stops the demo traffic, then the worker once it has written what was
    delivered, then the broker (see :mod:`spendstream.cli.dev_stop`).
    """
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with StopSignals() as signals, contextlib.ExitStack() as running:
        with contextlib.suppress(KeyboardInterrupt):  # a stop signal: the ordered stop follows
            run(running, demo, rate, data_dir, duration, config)
        signals.ignore()
        if not console.is_terminal:
            console.line()  # the live view leaves the cursor at the end of its last line
        console.print("stopping…")
    # Every part is stopped here (ExitStack: last started, first stopped).
    console.print(f"stopped. Data kept in {data_dir}; try: spendstream report --by team")


def run(
    running: contextlib.ExitStack,
    demo: bool,
    rate: float,
    data_dir: Path,
    duration: float,
    config: str | None,
) -> None:
    """Start the parts (each pushes its stop onto ``running``), then show the live view until
    ``duration`` has passed or a stop signal raises KeyboardInterrupt."""
    # The embedded default: chDB under the data directory, whatever the config says.
    dsn = f"chdb://{data_dir / 'clickhouse'}"
    broker = TansuBroker(log_path=data_dir / "tansu.log").start()
    running.callback(broker.stop)
    web_port = free_port()
    settings = settings_or_exit(
        config,
        kafka={"bootstrap_servers": broker.bootstrap_servers},
        clickhouse={"dsn": dsn},
        worker={"web_port": web_port, "data_dir": str(data_dir / "worker")},
    )
    # The terminal is for the live view: this process's own logs (the demo's producer, e.g.
    # kafka-python's slow-task warnings) go to a file beside the worker's.
    configure_logging(settings.log.level, "json", settings.secret_values(), data_dir / "dev.log")
    url = f"http://127.0.0.1:{web_port}"
    token_file = data_dir / TOKEN_FILE  # the worker creates an admin token there (mode 0600)
    # Demo budgets alert into a local inbox, unless the config brings budgets of its own.
    inbox = DevInbox(data_dir / "alerts.jsonl").start() if demo and not settings.budgets else None
    if inbox:
        running.callback(inbox.stop)
    worker_env = inbox.alerting_env() if inbox else {}
    if demo:
        worker_env.update(demo_worker_env(settings))
    worker_env["SPENDSTREAM_API__ADMIN_TOKEN_FILE"] = str(token_file)
    worker = start_worker(settings, config, data_dir / "worker.log", worker_env)
    running.callback(stop_process, worker)
    wait_for_port("127.0.0.1", web_port, timeout_s=60)
    wait_healthy(url, worker, log_path=data_dir / "worker.log")
    console.print(
        f"[green]broker[/green]   {broker.bootstrap_servers} (Tansu, memory only; for the "
        f"README tour: export B={broker.bootstrap_servers})"
    )
    console.print(
        f"[green]worker[/green]   {url}/metrics  (logs: {data_dir / 'worker.log'}, "
        f"{data_dir / 'dev.log'})"
    )
    console.print(f"[green]ledger[/green]   {dsn}")
    console.print(
        "[green]query[/green]    spendstream sql 'SELECT ...'  |  spendstream report --by team"
    )
    console.print(
        f"[green]api[/green]      {url}/api/v1  admin token in {token_file} (the CLI uses it)"
        f'\n         curl -H "Authorization: Bearer $(cat {token_file})" '
        f"'{url}/api/v1/spend?by=team'"
    )
    console.print(
        f"[green]dashboard[/green] {url}/  log in with the admin token: "
        f"cat {token_file}\n         (or a viewer: spendstream tokens create --name NAME "
        "--role viewer --team TEAM)"
    )
    if inbox:
        console.print(f"[green]alerts[/green]   demo budgets → {inbox.log_path}")
    token = token_file.read_text().strip()
    traffic: DemoTraffic | None = None
    if demo:
        recorder = Recorder.from_settings(settings, spool_dir=str(data_dir / "spool"))
        running.callback(recorder.close)
        traffic = DemoTraffic(recorder, rate=rate).start()
        running.callback(stop_demo, traffic, recorder, url, token)
    reader = WorkerReader(ApiClient(url, token))
    started = time.monotonic()
    with Live(live_view(reader, 0, inbox), console=console, refresh_per_second=1) as live:
        while not duration or time.monotonic() - started < duration:
            if worker.poll() is not None:
                raise WorkerEnded(worker.returncode, data_dir / "worker.log")
            time.sleep(2)
            live.update(live_view(reader, traffic.sent if traffic else 0, inbox))


def demo_worker_env(settings: Settings) -> dict[str, str]:
    """The demo's quota for the worker, unless the config brings quotas of its own."""
    return {} if settings.quotas else {"SPENDSTREAM_QUOTAS": json.dumps(DEMO_QUOTAS)}


def stop_demo(traffic: DemoTraffic, recorder: Recorder, url: str, token: str) -> None:
    """Stop the traffic, deliver what the Recorder holds, and let the worker write it all
    before the worker and the broker stop (the broker keeps topics in memory only)."""
    traffic.stop()
    recorder.close()
    drained = wait_drained(url, token, recorder.stats().sent)
    written = events_finished(url, token)  # None: the worker is not answering (ended)
    shown = "an unknown number (the worker is not answering)" if written is None else written
    console.print(f"{traffic.sent} demo events published, {shown} written to the ledger")
    if not drained and written is not None:
        console.print("[yellow]the worker had not caught up; the rest is lost with the broker")
