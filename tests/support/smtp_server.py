"""A local SMTP server (aiosmtpd) that keeps every message it receives."""

from __future__ import annotations

import email
import threading
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

from spendstream.embedded import free_port


class _Collector:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


class SmtpServer:
    """``with SmtpServer() as smtp:`` then ``smtp.apprise_url(to=...)``; ``smtp.messages``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.collector = _Collector()
        self.controller = Controller(self.collector, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.controller.stop()

    def apprise_url(self, to: str, sender: str = "alerts@example.com") -> str:
        """An Apprise ``mailto://`` URL for this server, plain SMTP (no TLS)."""
        return f"mailto://127.0.0.1:{self.port}?smtp=127.0.0.1&from={sender}&to={to}&mode=insecure"

    @property
    def messages(self) -> list[Message]:
        with self.collector.lock:
            return list(self.collector.messages)

    def texts(self) -> list[str]:
        """Subject plus the text/plain part of every message."""
        return [message_text(m) for m in self.messages]


def message_text(message: Message) -> str:
    parts = [str(message.get("Subject", ""))]
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                parts.append(payload.decode(part.get_content_charset() or "utf-8"))
    return "\n".join(parts)
