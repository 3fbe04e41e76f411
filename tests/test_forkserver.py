"""The tests' fork server starts a child the tests cannot tell from a subprocess
(tests/support/forkserver.py): the same argv, environment, working directory, stdio, exit
codes and signals as ``python -m MODULE`` in a plain subprocess, and nothing left running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import forkserver

pytestmark = pytest.mark.integration

# Runs as `python -m probe_child MODE`: reports what a test could see of its process.
PROBE = """
import atexit, json, os, sys, threading, time
atexit.register(lambda: print("atexit ran", flush=True))
threading.Thread(target=lambda: (time.sleep(0.3), print("thread joined", flush=True))).start()
fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
seen = {"argv": sys.argv[1:], "name": __name__, "cwd": os.getcwd(), "path0": sys.path[0],
        "env": os.environ.get("PROBE_VALUE"), "tz": time.tzname[0],
        "fds": fds[:-1], "threads": len(os.listdir("/proc/self/task"))}
print(json.dumps(seen), flush=True)
print("to stderr", file=sys.stderr, flush=True)
if sys.argv[1] == "wait":
    time.sleep(120)
sys.exit(int(sys.argv[1]))
"""


@pytest.fixture(params=["plain", "forked"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("SPENDSTREAM_TEST_FORKSERVER", "1" if request.param == "forked" else "0")
    (tmp_path / "probe_child.py").write_text(PROBE)
    monkeypatch.chdir(tmp_path)
    return str(request.param)


def start(tmp_path: Path, arg: str, log: str = "out.log") -> forkserver.ChildProcess:
    env = {**os.environ, "PROBE_VALUE": "given", "TZ": "America/New_York"}
    with (tmp_path / log).open("ab") as out:
        return forkserver.start_module("probe_child", [arg], env, out)


def test_a_child_sees_what_a_subprocess_sees(mode: str, tmp_path: Path) -> None:
    child = start(tmp_path, "3")
    assert child.wait(60) == 3 and child.returncode == 3
    first, *rest = (tmp_path / "out.log").read_text().splitlines()
    assert json.loads(first) == {
        "argv": ["3"],
        "name": "__main__",
        "cwd": str(tmp_path),
        "path0": str(tmp_path),
        "env": "given",
        "tz": "EST",
        "fds": [0, 1, 2],  # nothing of the server's (its socket, its pipes) is inherited
        "threads": 2,  # the main thread and the probe's own
    }
    # stderr in the same file; non-daemon threads joined and atexit run, as at a normal exit
    assert rest == ["to stderr", "thread joined", "atexit ran"]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_signals_reach_the_child_and_its_exit_code_is_popens(
    mode: str, tmp_path: Path, sig: signal.Signals
) -> None:
    child = start(tmp_path, "wait")
    assert child.pid != os.getpid()
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(0.5)
    assert child.poll() is None
    os.kill(child.pid, 0)  # its own PID, a live process
    child.send_signal(sig)
    assert child.wait(30) == -sig
    child.send_signal(signal.SIGKILL)  # after the exit: ignored, as Popen ignores it


def test_the_server_holds_one_thread_and_ends_its_children_when_closed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SPENDSTREAM_TEST_FORKSERVER", "1")
    (tmp_path / "probe_child.py").write_text(PROBE)
    monkeypatch.chdir(tmp_path)
    child = start(tmp_path, "wait")
    server = forkserver._server().process
    assert len(os.listdir(f"/proc/{server.pid}/task")) == 1
    forkserver.close()
    assert server.returncode == 0
    assert child.wait(10) == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child.pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # reaped by the server before it exited
    assert not Path(f"/proc/{child.pid}").exists()
