"""A real ClickHouse HTTP server for tests, served by chDB from a data directory.

chDB (the ClickHouse 26.9 engine) can listen on the ClickHouse HTTP interface (see INFRA.md):
a process whose working directory holds a ``config.xml`` with the ports runs
``SYSTEM START LISTEN HTTP`` and then keeps its query alive with a long ``sleepEachRow``. Several
processes (workers, the test) can then share one data directory through ``http://`` DSNs, and
stopping the server simulates a ClickHouse outage: :meth:`ChdbHttpServer.stop` sends SIGTERM, the
data survives, and :meth:`ChdbHttpServer.start` serves the same directory on the same port again.

``chdb._chdb.query`` is undocumented: this is test tooling only. No password: loopback only.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from spendstream.embedded import EmbeddedError, free_port
from tests.support.worker import http_get

CONFIG_XML = """<clickhouse>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <listen_host>127.0.0.1</listen_host>{logs}
</clickhouse>
"""

# With ``query_log=True``: every statement's CPU (``system.query_log``'s ProfileEvents) and every
# part written or merged (``system.part_log``), for bench.statements; off by default (it costs).
LOGS_XML = """
    <query_log><database>system</database><table>query_log</table>
        <flush_interval_milliseconds>1000</flush_interval_milliseconds></query_log>
    <part_log><database>system</database><table>part_log</table>
        <flush_interval_milliseconds>1000</flush_interval_milliseconds></part_log>"""

# Runs in the server process: listen, then hold the session open until SIGTERM.
SERVE = """
import sys
import chdb._chdb as engine
engine.query(
    "SYSTEM START LISTEN HTTP; "
    "SELECT sleepEachRow(1) FROM numbers(10000000) SETTINGS max_block_size=1 FORMAT Null",
    "TabSeparated",
    path=sys.argv[1],
)
"""


@dataclass
class ChdbHttpServer:
    """chDB serving ``data_dir`` over HTTP on 127.0.0.1:``port`` in a child process."""

    data_dir: Path
    port: int = 0
    log_path: Path | None = None
    tcp_port: int = 0
    query_log: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def dsn(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> ChdbHttpServer:
        """Start serving (the same directory and port as before after a :meth:`stop`)."""
        self.port = self.port or free_port()
        self.tcp_port = self.tcp_port or free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The config must be in the process's cwd; keep it outside the data directory.
        home = self.data_dir.with_name(self.data_dir.name + ".server")
        home.mkdir(exist_ok=True)
        (home / "config.xml").write_text(
            CONFIG_XML.format(
                http_port=self.port,
                tcp_port=self.tcp_port,
                logs=LOGS_XML if self.query_log else "",
            )
        )
        log_path = self.log_path or home / "server.log"
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SERVE, str(self.data_dir.resolve())],
                cwd=home,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while not self.ping():
            if self.process.poll() is not None:
                raise EmbeddedError(f"chDB HTTP server exited; see {log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedError(f"chDB HTTP server not ready on {self.dsn}; see {log_path}")
            time.sleep(0.1)
        return self

    def ping(self) -> bool:
        """True when the server answers ClickHouse's ``/ping`` with ``Ok.``."""
        try:
            return http_get(f"{self.dsn}/ping", timeout=1).text.strip() == "Ok."
        except httpx.HTTPError:
            return False

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM and wait (SIGKILL if it hangs); the data directory is kept."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout_s)

    def __enter__(self) -> ChdbHttpServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
