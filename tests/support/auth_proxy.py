"""An HTTP proxy in front of a ClickHouse HTTP server that requires a user and password.

chDB's HTTP server knows only the password-less ``default`` user, so tests of password DSNs
(``http://writer:secret@host:port``) put this proxy in front: it accepts exactly the configured
credentials (HTTP Basic, as clickhouse-connect sends them, or ``X-ClickHouse-User``/``-Key``),
answers 401 otherwise, and forwards accepted requests without the credentials.
"""

from __future__ import annotations

import base64
import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from spendstream.embedded import free_port

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "authorization", "host"}


class AuthProxy:
    def __init__(self, upstream_port: int, user: str, password: str) -> None:
        self.port = free_port()
        self.upstream_port = upstream_port
        self.user, self.password = user, password
        self.accepted = 0
        self.refused = 0
        self.server: ThreadingHTTPServer | None = None

    def dsn(self, user: str | None = None, password: str | None = None) -> str:
        return f"http://{user or self.user}:{password or self.password}@127.0.0.1:{self.port}"

    def authorized(self, headers: Any) -> bool:
        basic = headers.get("Authorization", "")
        if basic.startswith("Basic "):
            user, _, password = base64.b64decode(basic[6:]).decode().partition(":")
        else:
            user, password = headers.get("X-ClickHouse-User"), headers.get("X-ClickHouse-Key")
        return (user, password) == (self.user, self.password)

    def start(self) -> AuthProxy:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                body = self._body()
                if not owner.authorized(self.headers):
                    owner.refused += 1
                    message = b"Code: 516. Authentication failed (test proxy)"
                    self.send_response(401)
                    self.send_header("Content-Length", str(len(message)))
                    self.end_headers()
                    self.wfile.write(message)
                    return
                owner.accepted += 1
                headers = {
                    key: value
                    for key, value in self.headers.items()
                    if key.lower() not in HOP_HEADERS
                    and not key.lower().startswith("x-clickhouse-")
                }
                upstream = http.client.HTTPConnection("127.0.0.1", owner.upstream_port, timeout=60)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    self.send_response(response.status)
                    for key, value in response.getheaders():
                        if key.lower() not in HOP_HEADERS | {"content-length"}:
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    upstream.close()

            def _body(self) -> bytes | None:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0].strip(), 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()  # CRLF after each chunk
                    while self.rfile.readline().strip():  # trailers, up to the blank line
                        pass
                    return b"".join(chunks)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else None

            do_GET = do_POST = _forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> AuthProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
