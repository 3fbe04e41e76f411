"""structlog set-up: human-readable on a terminal, JSON lines otherwise.

structlog itself (:mod:`spendstream.log_format`) is imported when the first logger is handed out
(:func:`get_logger`) or the first record formatted, not by :func:`configure_logging`: a CLI
command that logs nothing (``report``, ``sql``) does not pay its import (Rich's traceback and
pretty-printer, attrs, asyncio). spendstream's structlog loggers all come from
:func:`get_logger`, so configuring structlog there is configuring it in time.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import structlog

    from spendstream.log_format import RedactingFormatter


class CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record: test runners and CLI
    runners swap (and close) it, and background threads may still log afterwards."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        return


class DeferredFormatter(logging.Formatter):
    """Builds the real formatter (:func:`spendstream.log_format.redacting_formatter`, and so
    imports structlog) when the first record is formatted."""

    def __init__(self, console: bool, secrets: Sequence[str]) -> None:
        super().__init__()
        self.console = console
        self.secrets = tuple(secrets)
        self._built: RedactingFormatter | None = None

    def format(self, record: logging.LogRecord) -> str:
        if self._built is None:
            from spendstream.log_format import redacting_formatter

            self._built = redacting_formatter(self.console, self.secrets)
        return self._built.format(record)


class _Structlog:
    """``pending``: :func:`configure_logging` ran since structlog was last configured;
    ``in_use``: :func:`get_logger` handed out a logger (structlog is imported)."""

    pending = False
    in_use = False


def _configure_structlog_if_pending() -> None:
    if _Structlog.pending:
        from spendstream.log_format import configure_structlog

        configure_structlog()
        _Structlog.pending = False


def configure_logging(
    level: str = "info", fmt: str = "auto", secrets: Sequence[str] = (), path: Path | None = None
) -> None:
    """Route structlog and stdlib logging (Faust, aiokafka, kafka-python) through one renderer,
    on stderr (or appended to ``path`` as JSON lines, for a terminal kept for people), with
    ``secrets`` (``Settings.secret_values()``) masked in every line.

    ``fmt`` is ``console``, ``json`` or ``auto`` (console when stderr is a TTY).
    """
    use_console = path is None and (fmt == "console" or (fmt == "auto" and sys.stderr.isatty()))
    _Structlog.pending = True
    if _Structlog.in_use:  # loggers exist: configure structlog now (else get_logger will)
        _configure_structlog_if_pending()
    handler = logging.FileHandler(path) if path else CurrentStderrHandler()
    handler.setFormatter(DeferredFormatter(use_console, secrets))
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
    """A structlog logger bound to ``name`` (structlog configured first if it is due)."""
    import structlog

    _Structlog.in_use = True
    _configure_structlog_if_pending()
    return structlog.stdlib.get_logger(name)
