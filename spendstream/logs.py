"""structlog set-up: human-readable on a terminal, JSON lines otherwise."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from spendstream.config import redact_text


class CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record: test runners and CLI
    runners swap (and close) it, and background threads may still log afterwards."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        return


class RedactingFormatter(structlog.stdlib.ProcessorFormatter):
    """Renders a record, then masks every configured secret and any URL password in it:
    whatever a library puts in a message or exception, the line carries no secret."""

    def __init__(self, *args: object, secrets: Sequence[str] = (), **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.secrets = tuple(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record), self.secrets)


def configure_logging(
    level: str = "info", fmt: str = "auto", secrets: Sequence[str] = (), path: Path | None = None
) -> None:
    """Route structlog and stdlib logging (Faust, aiokafka, kafka-python) through one renderer,
    on stderr (or appended to ``path`` as JSON lines, for a terminal kept for people), with
    ``secrets`` (``Settings.secret_values()``) masked in every line.

    ``fmt`` is ``console``, ``json`` or ``auto`` (console when stderr is a TTY).
    """
    use_console = path is None and (fmt == "console" or (fmt == "auto" and sys.stderr.isatty()))
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.FileHandler(path) if path else CurrentStderrHandler()
    handler.setFormatter(
        RedactingFormatter(
            secrets=secrets,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # A terminal kept for people (``dev``'s live view): Python warnings a library raises go to
    # the file too, instead of printing over the view.
    logging.captureWarnings(path is not None)
    root.setLevel(level.upper())
    # Client libraries are chatty at INFO about every rebalance and connection.
    for noisy in ("aiokafka", "kafka", "faust", "mode", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger bound to ``name``."""
    return structlog.stdlib.get_logger(name)
