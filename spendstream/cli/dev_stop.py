"""How ``spendstream dev`` stops: one signal, then producer → worker → broker, in that order.

A terminal's Ctrl-C sends SIGINT to the whole foreground process group. The broker and the worker
therefore run in process groups of their own (``process_group=0``): only ``dev`` gets the signal,
and it stops its parts in order, so nothing ever talks to a broker that is already gone:

1. the demo traffic, then the Recorder (it delivers what it holds while the broker is up);
2. the worker, once it has written every delivered event (the broker keeps topics in memory
   only: what the worker has not consumed when the broker stops is gone), with SIGTERM;
3. the broker, last.

SIGINT, SIGTERM and SIGHUP all mean "stop"; after the first one the others are ignored, so an
impatient second Ctrl-C cannot cut the ordered stop short (every step is bounded anyway).
"""

from __future__ import annotations

import signal
import subprocess
import time
from types import FrameType

from prometheus_client.parser import text_string_to_metric_families

from spendstream.sinks.http_call import NoAnswer, exchange

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Counters whose sum is every event the worker has finished with (see stream.metrics).
FINISHED = (
    "spendstream_events_priced",
    "spendstream_events_unpriced",
    "spendstream_events_dead_lettered",
    "spendstream_duplicates_in_batch",
)


class StopSignals:
    """Within ``with``: SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt once, then are ignored.

    The previous handlers come back on exit (``dev`` may run inside a test's interpreter).
    """

    def __init__(self) -> None:
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._stop)
        return self

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.ignore()
        raise KeyboardInterrupt

    def ignore(self) -> None:
        """From now on, stop signals are ignored (the ordered stop is under way)."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


def events_finished(url: str, token: str) -> int | None:
    """Events the worker at ``url`` has written or set aside (from /metrics, read with
    ``token``); None if unknown."""
    try:  # http.client, not httpx: no TLS context built for each poll (~20 ms of CPU)
        answer = exchange(
            "GET", f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout_s=1.0
        )
    except NoAnswer:
        return None
    if answer.status >= 400:  # as raise_for_status did
        return None
    text = answer.text()
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name in FINISHED:
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return int(total)


def wait_drained(url: str, token: str, delivered: int, timeout_s: float = 10.0) -> bool:
    """Wait until the worker has finished ``delivered`` events; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        finished = events_finished(url, token)
        if finished is None or finished >= delivered:
            return finished is not None
        time.sleep(0.1)
    return False


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
