"""A local webhook inbox for ``spendstream dev``: demo budgets alert here instead of Slack.

Alerts arrive as Apprise ``json://`` posts, are appended to ``<data>/alerts.jsonl`` and kept for
the live view. Loopback only.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from spendstream.embedded import free_port

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
    """An HTTP server on 127.0.0.1 that records every JSON body POSTed to it."""

    def __init__(self, log_path: Path, keep: int = 6) -> None:
        self.log_path = log_path
        self.port = free_port()
        self.received: deque[dict[str, Any]] = deque(maxlen=keep)
        self.count = 0
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                inbox.record(body)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return  # keep the terminal for the live view

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def apprise_url(self) -> str:
        return f"json://127.0.0.1:{self.port}/alerts"

    def record(self, body: bytes) -> None:
        try:
            message = json.loads(body)
        except ValueError:
            message = {"message": body.decode(errors="replace")}
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
