"""A stop signal that arrives while the worker starts is kept until Faust can take it.

The API thread answers ``/health`` before Faust installs its signal handlers: a SIGTERM in
between (a supervisor, or ``spendstream dev``, stopping a worker it has just seen healthy) took
the default action and ended the process on the spot (exit -15, nothing closed) instead of
stopping it cleanly. From just before the API starts, SIGTERM and SIGINT are only noted; once
Faust's handlers are in, the worker sends the noted signal to itself again and Faust stops as
for any other.
"""

from __future__ import annotations

import os
import signal
from types import FrameType
from typing import Any

import faust

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class PendingStop:
    """Notes SIGTERM and SIGINT from :meth:`watch` on (Faust's handlers replace it later)."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def watch(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._note)

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signum


class FaustWorker(faust.Worker):
    """Faust's worker, handed the stop signal that arrived before its handlers were in."""

    def __init__(self, app: faust.App, *, pending: PendingStop, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.pending = pending

    def install_signal_handlers(self) -> None:
        super().install_signal_handlers()
        if self.pending.signal is not None:
            os.kill(os.getpid(), self.pending.signal)  # Faust's handler takes it now
