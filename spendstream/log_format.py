"""The structlog half of :mod:`spendstream.logs`: its processors and the formatter that renders
every record. Imported when the first record is formatted or the first logger handed out, not
when logging is configured: structlog brings Rich's traceback and pretty-printer, attrs and
asyncio, which a short CLI command that logs nothing should not load.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import structlog

from spendstream.config import redact_text


class RedactingFormatter(structlog.stdlib.ProcessorFormatter):
    """Renders a record, then masks every configured secret and any URL password in it:
    whatever a library puts in a message or exception, the line carries no secret."""

    def __init__(self, *args: object, secrets: Sequence[str] = (), **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.secrets = tuple(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record), self.secrets)


def shared_processors() -> list[structlog.typing.Processor]:
    """What every line gets, from structlog or from a library's stdlib logger."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_structlog() -> None:
    """structlog's loggers hand their events to stdlib logging, rendered by the formatter."""
    structlog.configure(
        processors=[*shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def redacting_formatter(console: bool, secrets: Sequence[str]) -> RedactingFormatter:
    """Console lines for people, else JSON lines; ``secrets`` masked in both."""
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    )
    return RedactingFormatter(
        secrets=secrets,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
        foreign_pre_chain=[*shared_processors(), structlog.stdlib.add_logger_name],
    )
