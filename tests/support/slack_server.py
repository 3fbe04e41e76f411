"""A local HTTP server that receives Slack incoming-webhook posts (and generic JSON webhooks).

It answers like Slack (HTTP 200, body ``ok``) and keeps every JSON body it received. It can be
taken down (the port refuses connections) and brought back on the same port to test retries.
Point Apprise's Slack plugin at it with ``[alerts] slack_webhook_base = server.base_url``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from spendstream.embedded import free_port


class SlackServer:
    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self.received: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """Use as ``slack_webhook_base``: Apprise appends ``/T/B/C`` to it."""
        return f"http://127.0.0.1:{self.port}/services"

    def start(self) -> SlackServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with owner.lock:
                    owner.received.append(body)
                    owner.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        """Close the port: clients now get 'connection refused'."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def texts(self) -> list[str]:
        """Every message's text (Slack Block Kit sections), one string per post."""
        with self.lock:
            bodies = list(self.received)
        return [message_text(body) for body in bodies]


def message_text(body: dict[str, Any]) -> str:
    parts = []
    for attachment in body.get("attachments", []):
        parts += [str(attachment.get("title", "")), str(attachment.get("text", ""))]
        for block in attachment.get("blocks", []):
            parts.append(block.get("text", {}).get("text", ""))
    if "text" in body:
        parts.append(str(body["text"]))
    if "message" in body:  # Apprise json:// payload
        parts += [str(body.get("title", "")), str(body["message"])]
    return "\n".join(parts)
