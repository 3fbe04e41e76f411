"""A local webhook inbox for ``spendstream dev``: demo budgets alert here instead of Slack.

Alerts arrive as Apprise ``json://`` posts, are appended to ``<data>/alerts.jsonl`` and kept for
the live view. Loopback only, and for senders, not browsers: a web page the developer opens
could POST here too (a "simple" cross-site request needs no preflight), so a request with an
``Origin`` header (browsers send one on every cross-site POST) or a body that is not
``application/json`` is refused, and only a JSON object is recorded (400 otherwise).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from pathlib import Path
from typing import Any

from spendstream.embedded import free_port

MAX_BODY_BYTES = 1 << 20
# Small limits so the demo's traffic (50 events/s) crosses thresholds within a few minutes.
DEMO_BUDGETS: list[dict[str, Any]] = [
    {"name": "search-daily", "scope": {"team": "search"}, "period": "day", "limit": "6",
     "thresholds": [50, 80, 100], "channels": ["dev-inbox"], "owner": "search-oncall"},
    {"name": "support-daily", "scope": {"team": "support"}, "period": "day", "limit": "10",
     "thresholds": [50, 80, 100], "channels": ["dev-inbox"], "owner": "support-oncall"},
    {"name": "research-daily", "scope": {"team": "research"}, "period": "day", "limit": "25",
     "thresholds": [50, 100], "channels": ["dev-inbox"], "owner": "research-lead"},
    {"name": "all-monthly", "scope": {}, "period": "month", "limit": "200", "thresholds": [100],
     "forecast": True, "spike": {"window": "1m", "baseline": "10m", "factor": 3,
                                  "min_spend": "0.2", "cooldown": "5m"},
     "channels": ["dev-inbox"], "owner": "finance"},
]  # fmt: skip


class DevInbox:
    """An HTTP server on 127.0.0.1 that records every JSON object a notifier POSTs to it."""

    def __init__(self, log_path: Path, keep: int = 6) -> None:
        self.log_path = log_path
        self.port = free_port()
        self.received: deque[dict[str, Any]] = deque(maxlen=keep)
        self.count = 0
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                status, answer = inbox.receive(self.headers, self.rfile)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return  # keep the terminal for the live view

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def apprise_url(self) -> str:
        return f"json://127.0.0.1:{self.port}/alerts"

    def receive(self, headers: Message, stream: BufferedIOBase) -> tuple[int, bytes]:
        """``(status, answer)`` for one POST: recorded (200) or refused saying why."""
        if headers.get("Origin") is not None:
            return 403, b"browsers may not post here (an Origin header): send from a notifier"
        media = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media != "application/json":
            return 415, b"send Content-Type: application/json (as Apprise's json:// does)"
        try:
            length = int(headers.get("Content-Length") or "")
        except ValueError:
            return 411, b"send a Content-Length"
        if not 0 <= length <= MAX_BODY_BYTES:
            return 413, f"bodies are at most {MAX_BODY_BYTES} bytes".encode()
        try:
            message = json.loads(stream.read(length))
        except ValueError:
            message = None
        if not isinstance(message, dict):
            return 400, b'send a JSON object, e.g. {"title": "...", "message": "..."}'
        self.record(message)
        return 200, b"ok"

    def record(self, message: dict[str, Any]) -> None:
        message["received_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        with self.log_path.open("a") as handle:
            handle.write(json.dumps(message) + "\n")
        self.received.append(message)
        self.count += 1

    def start(self) -> DevInbox:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def alerting_env(self) -> dict[str, str]:
        """Environment that gives the worker the demo budgets, alerting into this inbox."""
        alerts = {"channels": {"dev-inbox": self.apprise_url}, "group_wait": "1s",
                  "evaluate_every": "10s", "forecast_window": "10m"}  # fmt: skip
        return {
            "SPENDSTREAM_BUDGETS": json.dumps(DEMO_BUDGETS),
            "SPENDSTREAM_ALERTS": json.dumps(alerts),
        }
