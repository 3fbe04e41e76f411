"""SDK logging through the standard :mod:`logging` module, so the host app decides where it goes.

The SDK never configures logging and never writes to stdout: its loggers
(``spendstream.producers.*``) carry a :class:`logging.NullHandler`, as the logging HOWTO asks of
libraries. An app that configures logging (``logging.basicConfig``, structlog's stdlib
integration, the spendstream worker) sees each record as ``event key=value ...``; the event name
and fields are also attached to the record as ``record.spendstream`` (a dict).
"""

from __future__ import annotations

import logging
from typing import Any

ROOT = "spendstream.producers"
logging.getLogger(ROOT).addHandler(logging.NullHandler())


class EventLogger:
    """A stdlib logger that takes an event name and keyword fields (the call style of the rest
    of spendstream), rendered into the message only when the level is enabled."""

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)

    def log(self, level: int, event: str, exc_info: bool = False, **fields: Any) -> None:
        if not self.logger.isEnabledFor(level):
            return
        text = " ".join([event, *(f"{key}={value}" for key, value in fields.items())])
        self.logger.log(
            level, "%s", text, exc_info=exc_info, extra={"spendstream": {"event": event, **fields}}
        )

    def debug(self, event: str, **fields: Any) -> None:
        self.log(logging.DEBUG, event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self.log(logging.INFO, event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.log(logging.WARNING, event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.log(logging.ERROR, event, **fields)

    def exception(self, event: str, **fields: Any) -> None:
        """ERROR with the current exception's traceback (call from an ``except`` block)."""
        self.log(logging.ERROR, event, exc_info=True, **fields)


def get_logger(name: str) -> EventLogger:
    """The SDK logger for module ``name`` (a child of ``spendstream.producers``)."""
    return EventLogger(name)
