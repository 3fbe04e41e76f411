"""Stopping `spendstream dev --demo`: Ctrl-C in a terminal, SIGINT to the process group, SIGTERM.

Each way must end with a clean exit, no error line, the broker and worker gone, and every
published demo event in the ledger (the broker keeps topics in memory only, so an event the
worker had not written before the broker stopped would be lost). How long the stop takes is
measured in docs/development.md, not asserted here; the deadline below only guards a hang.
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from spendstream.sinks.access import worker_url_at
from tests.support.cli import spendstream

pytestmark = pytest.mark.integration
HANG_GUARD_S = 60
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ERROR_LINE = re.compile(r"error|exception|traceback", re.IGNORECASE)
COMMAND = [sys.executable, "-m", "spendstream", "dev", "--demo", "--rate", "200"]


class Dev:
    """``spendstream dev --demo`` in a session of its own: on a pseudo-terminal (so Ctrl-C is
    a real ^C typed into a terminal) or with plain pipes."""

    def __init__(self, cwd: Path, terminal: bool) -> None:
        self.output = bytearray()
        env = {**os.environ, "COLUMNS": "200", "XDG_STATE_HOME": str(cwd / "state")}
        if terminal:
            self.pid, self.fd = pty.fork()
            if self.pid == 0:  # the child: the pty is its controlling terminal
                try:
                    os.chdir(cwd)
                    os.execve(sys.executable, COMMAND, env)
                finally:
                    os._exit(127)
        else:
            process = subprocess.Popen(
                COMMAND,
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            assert process.stdout is not None
            self.pid, self.fd = process.pid, process.stdout.fileno()
            self._process = process  # keeps the pipe open
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: the terminal's other side is gone
                return
            if not chunk:
                return
            self.output += chunk

    def children(self) -> set[int]:
        found: set[int] = set()
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            found.update(int(pid) for pid in (task / "children").read_text().split())
        return found

    def wait(self) -> int:
        deadline = time.monotonic() + HANG_GUARD_S
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._reader.join(10)
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        os.killpg(self.pid, signal.SIGKILL)
        pytest.fail(f"dev still running {HANG_GUARD_S}s after the stop signal:\n{self.text()}")

    def text(self) -> str:
        """The output without terminal control sequences (colours, cursor moves)."""
        return ANSI.sub("", self.output.decode(errors="replace"))


def ledger_count(cwd: Path) -> int | None:
    result = spendstream("sql", "SELECT count() FROM ledger FINAL", "--format", "csv", cwd=cwd)
    if result.returncode != 0:
        return None
    return int(result.stdout.splitlines()[-1] or 0)


def events_through_worker(cwd: Path) -> int | None:
    """:func:`ledger_count` through dev's worker once it has announced itself; None before.
    Read here, not by the command: before the worker announces itself, a ``spendstream sql``
    process goes the slow way (Typer, settings, the locked directory) and costs ~0.5-0.7
    CPU-s an attempt, against ~0.09 through the worker (docs/testing.md, session 13)."""
    if worker_url_at(f"chdb://{cwd / 'data' / 'clickhouse'}") is None:
        return None
    return ledger_count(cwd)


@pytest.mark.parametrize("how", ["ctrl-c", "sigint-to-group", "sigterm-to-dev"])
def test_dev_demo_stops_in_order_cleanly_with_every_event_written(tmp_path: Path, how: str) -> None:
    dev = Dev(tmp_path, terminal=how == "ctrl-c")
    try:
        deadline = time.monotonic() + 120
        while not events_through_worker(tmp_path):
            assert time.monotonic() < deadline, f"no events in the ledger:\n{dev.text()}"
            time.sleep(0.5)
        parts = dev.children()  # broker and worker
        assert len(parts) == 2, parts
    finally:
        if how == "ctrl-c":
            os.write(dev.fd, b"\x03")  # the terminal turns it into SIGINT for its foreground group
        elif how == "sigint-to-group":
            os.killpg(dev.pid, signal.SIGINT)
        else:
            os.kill(dev.pid, signal.SIGTERM)
        code = dev.wait()
    output = dev.text()
    assert code == 0, output
    errors = [line for line in output.splitlines() if ERROR_LINE.search(line)]
    assert errors == [], output
    assert "stopped. Data kept in" in output
    for pid in parts:
        assert not Path(f"/proc/{pid}").exists(), f"process {pid} outlived dev"
    published = re.search(r"(\d+) demo events published, (\d+) written to the ledger", output)
    assert published, output
    assert int(published[1]) > 0 and published[1] == published[2]
    assert ledger_count(tmp_path) == int(published[1])
    # Faust's data directory went under the data dir, not into the current directory.
    assert (tmp_path / "data" / "worker" / "spendstream-worker-data").is_dir()
    assert not list(tmp_path.glob("*-data"))


def test_broker_and_worker_end_when_dev_is_killed(tmp_path: Path) -> None:
    """SIGKILL (a closed terminal, the OOM killer) gives dev no chance to stop its parts: they
    must end by themselves rather than keep the ports and the chDB directory."""
    dev = Dev(tmp_path, terminal=False)
    try:
        parts = started_parts(dev, tmp_path)
    finally:
        os.kill(dev.pid, signal.SIGKILL)
        dev.wait()
    deadline = time.monotonic() + HANG_GUARD_S
    while alive := [pid for pid in parts if Path(f"/proc/{pid}").exists() and not zombie(pid)]:
        assert time.monotonic() < deadline, f"{alive} outlived a SIGKILLed dev"
        time.sleep(0.2)
    # The data directory is free again: a new dev (or `sql` on the files) can open it.
    assert ledger_count(tmp_path) is not None


def started_parts(dev: Dev, cwd: Path) -> set[int]:
    """Broker and worker, once both run and the ledger has events."""
    deadline = time.monotonic() + 120
    while len(parts := dev.children()) < 2 or not events_through_worker(cwd):
        assert time.monotonic() < deadline, f"dev did not start its parts:\n{dev.text()}"
        time.sleep(0.5)
    return parts


def zombie(pid: int) -> bool:
    """An ended child whose exit nobody collected yet (its parent, dev, is gone too)."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return True


def test_a_killed_worker_is_reported_plainly_and_dev_ends_its_parts(tmp_path: Path) -> None:
    """The worker SIGKILLed (the OOM killer) under dev: dev says so, names the worker's log and
    what was written (a number or unknown, never None), exits 1 without calling it a bug, and
    the broker ends too."""
    dev = Dev(tmp_path, terminal=False)
    try:
        parts = started_parts(dev, tmp_path)
        (worker,) = [pid for pid in parts if b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        os.kill(worker, signal.SIGKILL)
        code = dev.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(dev.pid, signal.SIGKILL)
    output = " ".join(dev.text().split())
    assert code == 1, output
    assert "the worker was killed by signal 9 (SIGKILL); its log: " in output
    assert str(tmp_path / "data" / "worker.log") in output
    assert "bug" not in output and "internal error" not in output and "None" not in output
    assert re.search(r"demo events published, (\d+|an unknown number .*?) written", output)
    for pid in parts:
        assert not Path(f"/proc/{pid}").exists() or zombie(pid), f"{pid} outlived dev"
