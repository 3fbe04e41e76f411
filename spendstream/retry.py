"""The retry policies of the worker side, named once (on tenacity).

Every policy states what it retries, how long it waits and when it stops (tenacity's default is
"forever, without waiting", so nothing here relies on defaults):

- :func:`storage`: a ClickHouse write or refresh the stream cannot skip (ledger insert, rollup
  refresh). Retries while ``transient(error)`` holds, forever (the stream back-pressures
  meanwhile; the ledger's insert is idempotent, so a repeat is safe), waiting 0.2 s doubling up
  to ``max_s``. Any other error is raised at once for the caller to judge (isolate the row).
  :func:`storage_blocking` is the same policy for a thread without an event loop.
- :func:`broker`: a publish the batch's acknowledgement waits for (dead letters). Retries any
  error, forever, 0.2 s doubling up to ``max_s``.
- :func:`startup`: connecting to a server that may come up after us. Retries ``errors`` only,
  0.5 s doubling up to 10 s, and stops before a wait would pass ``timeout_s`` (the last error
  is raised).
- :func:`recording`: writing the outcome of something already done (a notification sent):
  retries any error, 0.2 s doubling up to 2 s, for at most ``timeout_s``.
- :func:`delivery_backoff`: the outbox's schedule between attempts at a notification
  (``retry_initial`` doubling up to ``retry_max``); delivery attempts are rows in ClickHouse,
  not a loop in memory, so only the wait is shared.

Each policy is a value: build it, then iterate it (``for attempt in policy: with attempt: …``)
or call it. Tests pass ``sleep=`` to run a policy without waiting.

The SDK (``spendstream.producers``) keeps its own non-blocking back-off in the sender: it
schedules the next attempt while the application thread returns, which is not a loop a retry
library can own, and the SDK does not depend on tenacity.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_before_delay,
    stop_never,
    wait_exponential,
)

from spendstream.logs import get_logger

log = get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]


def _log_retry(message: str) -> Callable[[RetryCallState], None]:
    """A ``before_sleep`` hook logging ``message`` with the error and the coming wait."""

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else None
        log.warning(message, error=str(error)[:300], retry_in=wait, attempt=state.attempt_number)

    return before_sleep


def _forever_policy(
    retried: Callable[[BaseException], bool], max_s: float, message: str
) -> dict[str, Any]:
    """What the forever policies share, for tenacity's async and blocking retryers alike."""
    return {
        "retry": retry_if_exception(retried),
        "wait": wait_exponential(multiplier=0.2, max=max_s),
        "stop": stop_never,
        "before_sleep": _log_retry(message),
        "reraise": True,
    }


def _forever(
    retried: Callable[[BaseException], bool], max_s: float, message: str, sleep: Sleep
) -> AsyncRetrying:
    return AsyncRetrying(sleep=sleep, **_forever_policy(retried, max_s, message))


def storage(
    transient: Callable[[BaseException], bool],
    max_s: float,
    message: str,
    sleep: Sleep = asyncio.sleep,
) -> AsyncRetrying:
    """Retry transient storage errors forever, 0.2 s doubling up to ``max_s``."""
    return _forever(transient, max_s, message, sleep)


def storage_blocking(
    transient: Callable[[BaseException], bool],
    max_s: float,
    message: str,
    sleep: Callable[[float], Any] = time.sleep,
) -> Retrying:
    """:func:`storage` for a caller on a thread of its own, with no event loop (the parse
    thread's ledger read of ``stream.stamps``): the same policy."""
    return Retrying(sleep=sleep, **_forever_policy(transient, max_s, message))


def broker(max_s: float, message: str, sleep: Sleep = asyncio.sleep) -> AsyncRetrying:
    """Retry any error of a publish forever, 0.2 s doubling up to ``max_s``."""
    return _forever(lambda exc: isinstance(exc, Exception), max_s, message, sleep)


def startup(
    errors: tuple[type[BaseException], ...],
    timeout_s: float,
    message: str,
    sleep: Callable[[float], Any] = time.sleep,
) -> Retrying:
    """Retry ``errors`` 0.5 s doubling up to 10 s; stop before a wait passes ``timeout_s``."""
    return Retrying(
        retry=retry_if_exception_type(errors),
        wait=wait_exponential(multiplier=0.5, max=10.0),
        stop=stop_before_delay(timeout_s),
        before_sleep=_log_retry(message),
        sleep=sleep,
        reraise=True,
    )


def recording(timeout_s: float, sleep: Callable[[float], Any] = time.sleep) -> Retrying:
    """Retry any error of a write recording what was already done (a sent notification's
    outcome), 0.2 s doubling up to 2 s, for at most ``timeout_s`` (then the last error)."""
    return Retrying(
        retry=retry_if_exception_type(Exception),
        wait=wait_exponential(multiplier=0.2, max=2.0),
        stop=stop_before_delay(timeout_s),
        before_sleep=_log_retry("recording a delivery outcome failed; retrying"),
        sleep=sleep,
        reraise=True,
    )


def delivery_backoff(attempts: int, initial: timedelta, maximum: timedelta) -> timedelta:
    """The wait after failed attempt number ``attempts`` (1-based): ``initial`` doubling up to
    ``maximum`` (tenacity's exponential wait, computed for the stored attempt count)."""
    wait = wait_exponential(multiplier=initial.total_seconds(), max=maximum.total_seconds())
    state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = max(attempts, 1)
    return timedelta(seconds=wait(state))
