"""A pre-importing fork server for the tests' worker processes (test support only).

A worker started as ``python -m spendstream worker`` spends ~1 CPU-s importing Faust, FastAPI,
uvicorn and our package before it does anything; the suite starts ~100 of them. Each pytest
process instead starts one server (lazily, on its first worker) that has imported those modules
once, and forks a fresh child per request, which then runs ``python -m MODULE ARGS`` as a new
interpreter would (``runpy``, its own environment, working directory, argv and stdio; it exits
through the interpreter's normal shutdown: non-daemon threads joined, ``atexit`` run).

Why not ``multiprocessing``'s 'forkserver': its children re-import the parent's ``__main__``
(pytest's), exit with ``os._exit`` after the target (no ``atexit``, no joining of threads),
take stdio only as pickled objects and start a resource tracker process; this server is a
socket, ``fork`` and ``waitpid``, with none of that.

Fork safety: the server holds no thread and no socket but its own at fork time. It preloads
only modules whose import starts no thread: ``chdb`` starts ten (ClickHouse's thread pools), so
each child imports it as before; ``numpy`` (OpenBLAS's pool) and ``pyarrow`` (jemalloc's
background thread) start none in the server, which runs with :data:`NO_THREADS` (so its
children keep a one-thread OpenBLAS and no jemalloc purging thread: test workers only). The
server checks ``/proc/self/task`` after preloading and before every fork, and refuses to fork
with more than one thread.

What a test sees (:class:`ForkedProcess`, the part of ``subprocess.Popen`` the tests use): the
child's own PID, which tests signal as they would a subprocess (through a pidfd, so a signal
never reaches a recycled PID); ``poll``, ``wait`` and ``returncode`` with Popen's values
(``-9`` after SIGKILL), relayed by the server, the child's parent, which reaps it. When the
pytest process ends (or :func:`close` is called), the server SIGKILLs whatever it still runs.

``SPENDSTREAM_TEST_FORKSERVER=0`` starts plain subprocesses instead (to compare, or to rule the
server out).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import runpy
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import IO, Any, Protocol

# What `spendstream worker` imports, but for chdb (it starts threads): our package, then what
# Faust's app and uvicorn import only when they run, then what clickhouse-connect's first
# insert imports (pandas, numpy, pyarrow: ~0.25-0.45 CPU-s a child). A module left out is
# imported by the child, as before (docs/testing.md, "Round 3, session 11" and "session 13").
PRELOAD = (
    "spendstream.cli.root",
    "spendstream.cli.worker",
    "spendstream.worker.build",
    "spendstream.log_format",
    *(
        f"faust.{name}"
        for name in ("app.base", "app.router", "assignor", "events", "fixups.django")
    ),
    *(f"faust.{name}" for name in ("stores.base", "tables.table", "tables.sets", "topics")),
    *(f"faust.{name}" for name in ("transport.drivers.aiokafka", "web.drivers", "worker")),
    *(f"uvicorn.{name}" for name in ("lifespan.off", "loops.auto", "loops.asyncio")),
    *(f"uvicorn.protocols.{name}" for name in ("http.h11_impl", "websockets.auto")),
    "typer._adapters",
    "yaml",
    "email.policy",
    "_strptime",
    "numpy",
    "pandas",
    "pyarrow",
)
# The server's own environment: numpy and pyarrow then start no thread at import (OpenBLAS's
# pool of one is the caller's thread; jemalloc purges without its background thread).
NO_THREADS = {"OPENBLAS_NUM_THREADS": "1", "JE_ARROW_MALLOC_CONF": "background_thread:false"}

_STATUS = struct.Struct("i")
_ROOT = Path(__file__).resolve().parents[2]
# The environment before any test changed it: the server's imports see this one.
_ENVIRON = dict(os.environ)


def enabled() -> bool:
    return os.environ.get("SPENDSTREAM_TEST_FORKSERVER", "1") != "0"


class ChildProcess(Protocol):
    """What tests use of a started process (``subprocess.Popen`` has it too)."""

    pid: int
    returncode: int | Any

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...


def start_module(
    module: str, args: list[str], env: dict[str, str], stdout: IO[bytes]
) -> ChildProcess:
    """``python -m MODULE ARGS`` with ``env``, stdout and stderr to ``stdout``: forked from the
    pre-imported server, or a plain subprocess when it is switched off."""
    if not enabled():
        command = [sys.executable, "-m", module, *args]
        return subprocess.Popen(command, env=env, stdout=stdout, stderr=subprocess.STDOUT)
    return _server().spawn(module, args, env, stdout.fileno())


class ForkedProcess:
    """A child of the fork server, seen as ``subprocess.Popen`` shows a child."""

    def __init__(self, channel: socket.socket, pid: int, pidfd: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._channel = channel
        self._pidfd = pidfd
        self._lock = threading.Lock()
        weakref.finalize(self, os.close, pidfd)

    def poll(self) -> int | None:
        return self._status(0.0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._status(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(f"forked {self.pid}", timeout or 0.0)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # exited since: as Popen's
                signal.pidfd_send_signal(self._pidfd, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _status(self, timeout: float | None) -> int | None:
        """The exit code once the server has relayed the wait status, else None."""
        with self._lock:  # a test may poll from one thread while another waits
            if self.returncode is not None:
                return self.returncode
            ready = select.poll()
            ready.register(self._channel, select.POLLIN)
            if not ready.poll(None if timeout is None else timeout * 1000):
                return None
            data = self._channel.recv(_STATUS.size)
            if len(data) != _STATUS.size:
                raise RuntimeError(f"the fork server ended before child {self.pid} did")
            self.returncode = os.waitstatus_to_exitcode(_STATUS.unpack(data)[0])
            self._channel.close()
            return self.returncode


class ForkServer:
    """The client's end: the server process and the socket requests go through."""

    def __init__(self) -> None:
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fd, log = tempfile.mkstemp(prefix="spendstream-forkserver-", suffix=".log")
        self.log = Path(log)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.forkserver", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            cwd=_ROOT,
            env={**_ENVIRON, **NO_THREADS},
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=subprocess.STDOUT,
        )
        os.close(fd)
        theirs.close()
        self._lock = threading.Lock()

    def spawn(self, module: str, args: list[str], env: dict[str, str], out: int) -> ForkedProcess:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        request = {"module": module, "args": args, "env": env, "cwd": os.getcwd()}
        stdin = 0 if _usable(0) else os.open(os.devnull, os.O_RDONLY)  # Popen's: inherited
        with self._lock:
            socket.send_fds(
                self.control, [json.dumps(request).encode()], [theirs.fileno(), stdin, out, out]
            )
        theirs.close()
        if stdin != 0:
            os.close(stdin)
        # The first request waits for the server's imports (a few seconds on a loaded machine).
        ours.settimeout(120)
        try:
            data, received, _, _ = socket.recv_fds(ours, _STATUS.size, 1)
        except TimeoutError:
            data, received = b"", []
        if len(data) != _STATUS.size or len(received) != 1:
            raise RuntimeError(f"the fork server did not start a child; see {self.log}")
        ours.settimeout(None)
        return ForkedProcess(ours, _STATUS.unpack(data)[0], received[0])

    def close(self, timeout_s: float = 30.0) -> None:
        """Ends the server (it SIGKILLs its children still running) and reaps it, so that
        its and its children's CPU count in this process's ``RUSAGE_CHILDREN``."""
        self.control.close()
        code = self.process.wait(timeout_s)
        if code == 0:
            self.log.unlink(missing_ok=True)


def _usable(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


_running: ForkServer | None = None
_start_lock = threading.Lock()


def _server() -> ForkServer:
    global _running
    with _start_lock:
        if _running is None or _running.process.poll() is not None:
            _running = ForkServer()
            atexit.register(_running.close)
        return _running


def close() -> None:
    """Ends this process's server if one runs (the next request starts another)."""
    global _running
    with _start_lock:
        if _running is not None:
            atexit.unregister(_running.close)
            _running.close()
            _running = None


# The server: everything below runs in `python -m tests.support.forkserver FD`.


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def serve(control: socket.socket) -> dict[str, Any] | None:
    """Serves requests until the client closes its end; returns only in a forked child, with
    the request that child is to run (its stdio already in place)."""
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes poll() through wake_w
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C ends pytest, which ends us
    for name in PRELOAD:
        importlib.import_module(name)
    if threads() != 1:
        sys.exit(f"fork server: {threads()} threads after importing {PRELOAD}: not forking")
    children: dict[int, socket.socket] = {}
    poller = select.poll()
    poller.register(control, select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    while True:
        ready = {fd for fd, _ in poller.poll()}
        if wake_r in ready:
            while _drained(wake_r):
                pass
        _reap(children, os.WNOHANG)
        if control.fileno() not in ready:
            continue
        message, fds, _, _ = socket.recv_fds(control, 1 << 20, 4)
        if not message:  # the pytest process closed its end or ended
            for pid in children:
                os.kill(pid, signal.SIGKILL)
            _reap(children, 0)
            return None
        channel, stdio = socket.socket(fileno=fds[0]), fds[1:]
        if threads() != 1:
            sys.exit(f"fork server: {threads()} threads: not forking")
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for sock in (control, channel, *children.values()):
                sock.close()
            os.close(wake_r)
            os.close(wake_w)
            for target, fd in enumerate(stdio):
                os.dup2(fd, target)
            for fd in set(stdio) - {0, 1, 2}:
                os.close(fd)
            return dict(json.loads(message))
        for fd in stdio:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        socket.send_fds(channel, [_STATUS.pack(pid)], [pidfd])
        os.close(pidfd)
        children[pid] = channel


def _drained(fd: int) -> bool:
    try:
        return bool(os.read(fd, 512))
    except BlockingIOError:
        return False


def _reap(children: dict[int, socket.socket], flags: int) -> None:
    """Relays each ended child's wait status to its client (``flags=0``: waits for all)."""
    while children:
        try:
            pid, status = os.waitpid(-1, flags)
        except ChildProcessError:
            return
        if pid == 0:
            return
        channel = children.pop(pid, None)
        if channel is not None:
            with contextlib.suppress(OSError):  # its client is gone
                channel.send(_STATUS.pack(status))
            channel.close()


def run(request: dict[str, Any]) -> None:
    """``python -m MODULE ARGS`` in this (forked) interpreter, as a fresh one would run it."""
    cwd = str(request["cwd"])
    os.chdir(cwd)
    sys.path[0] = cwd  # as `-m` sets it
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    sys.argv = ["-m", *request["args"]]
    runpy.run_module(str(request["module"]), run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    child = serve(socket.socket(fileno=int(sys.argv[1])))
    if child is not None:
        run(child)
