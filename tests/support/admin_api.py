"""A local stand-in of the OpenAI and Anthropic admin APIs (cost and usage reports).

Serves given pages per path, following ``page`` tokens (``page_N`` -> page N). It can answer
the first request of each path with 429 + ``retry-after``, and the first request for page 1 of
each path with a 503, to exercise retries. Every request is recorded (path, query, headers).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from spendstream.embedded import free_port
from tests.support.provider_reports import dumps


class AdminApi:
    def __init__(
        self,
        pages: dict[str, list[Any]],
        rate_limit_first: bool = True,
        fail_page_one: bool = True,
        retry_after: str = "1",
    ) -> None:
        self.pages = pages
        self.rate_limit_first = rate_limit_first
        self.fail_page_one = fail_page_one
        self.retry_after = retry_after
        self.port = free_port()
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        self.answers: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AdminApi:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                status, body, headers = owner.answer(url.path, query, dict(self.headers))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def answer(
        self, path: str, query: dict[str, list[str]], headers: dict[str, str]
    ) -> tuple[int, str, dict[str, str]]:
        with self.lock:
            first_here = not any(p == path for p, _, _ in self.requests)
            token = query.get("page", ["page_0"])[0]
            index = int(token.removeprefix("page_"))
            first_for_page = not any(
                p == path and q.get("page", ["page_0"])[0] == token for p, q, _ in self.requests
            )
            self.requests.append((path, query, headers))
            if path not in self.pages:
                status, body, extra = 404, json.dumps({"error": "not found"}), {}
            elif self.rate_limit_first and first_here:
                status, body = 429, json.dumps({"error": {"type": "rate_limit_error"}})
                extra = {"retry-after": self.retry_after}
            elif self.fail_page_one and index == 1 and first_for_page:
                status, body, extra = 503, json.dumps({"error": "overloaded"}), {}
            else:
                status, body, extra = 200, dumps(self.pages[path][index]), {}
            self.answers.append((path, status))
            return status, body, extra

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
