"""A TCP proxy for tests: put it between Kafka clients and the broker, then cut and restore it.

``cut()`` closes every connection and stops listening (new connections are refused), which looks
to clients like a broker outage while the broker keeps its in-memory state. ``restore()`` listens
again on the same port. Start the broker with ``advertised_port=proxy.port`` so clients reconnect
through the proxy after fetching metadata.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from pathlib import Path

from spendstream.embedded import free_port, wait_for_port

_ROOT = Path(__file__).parent.parent.parent


class TcpProxy:
    def __init__(self, target_port: int, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.target = (host, target_port)
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.connections = 0  # accepted so far, for tests to check traffic went through us

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    restore = start

    def cut(self) -> None:
        """Refuse new connections and reset every open one."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            _close(listener)
        for sock in sockets:
            _close(sock)

    stop = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # listener closed by cut()
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut while connecting
                    _close(client)
                    _close(upstream)
                    return
                self._sockets.update((client, upstream))
                self.connections += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(sink)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.cut()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class ProxyProcess:
    """The same proxy in a child process; ``cut()`` kills it, ``restore()`` starts a new one.

    Keeps the proxy's pumping threads out of the process under test, so they do not compete for
    its GIL (tests that time calls in the process under test need this). Killing the process
    resets every connection and frees the port at once.
    """

    def __init__(self, target_port: int, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.target_port = target_port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> ProxyProcess:
        command = [sys.executable, "-m", "tests.support.tcp_proxy", str(self.target_port)]
        self.process = subprocess.Popen([*command, str(self.port)], cwd=_ROOT)
        wait_for_port(self.host, self.port)
        return self

    restore = start

    def cut(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    stop = cut


def main() -> None:
    """``python -m tests.support.tcp_proxy TARGET_PORT LISTEN_PORT``: proxy until killed."""
    TcpProxy(int(sys.argv[1]), port=int(sys.argv[2])).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
