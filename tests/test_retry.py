"""The named retry policies (spendstream.retry), run without waiting: what each retries, the
waits it takes, and when it gives up."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import tenacity

from spendstream import retry


class Flaky:
    """Fails with ``errors`` in order, then returns ``"done"``."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


class Waits:
    """A fake sleep that records the waits (async and sync)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def asleep(self, seconds: float) -> None:
        self.seconds.append(seconds)

    def sleep(self, seconds: float) -> None:
        self.seconds.append(seconds)


async def run_async(policy: retry.AsyncRetrying, call: Flaky) -> str:
    async for attempt in policy:
        with attempt:
            return call()
    raise AssertionError("unreachable")


def test_storage_retries_transient_errors_with_doubling_waits_up_to_the_cap() -> None:
    waits = Waits()
    call = Flaky(*(ConnectionError("down") for _ in range(6)))
    policy = retry.storage(lambda e: isinstance(e, ConnectionError), 1.0, "x", waits.asleep)
    assert asyncio.run(run_async(policy, call)) == "done"
    assert call.calls == 7
    assert waits.seconds == [0.2, 0.4, 0.8, 1.0, 1.0, 1.0]


def test_storage_raises_a_non_transient_error_at_once() -> None:
    waits = Waits()
    call = Flaky(ConnectionError("down"), ValueError("bad row"))
    policy = retry.storage(lambda e: isinstance(e, ConnectionError), 30.0, "x", waits.asleep)
    with pytest.raises(ValueError, match="bad row"):
        asyncio.run(run_async(policy, call))
    assert call.calls == 2 and waits.seconds == [0.2]


def test_broker_retries_any_error() -> None:
    waits = Waits()
    call = Flaky(RuntimeError("a"), KeyError("b"), OSError("c"))
    assert asyncio.run(run_async(retry.broker(0.5, "x", waits.asleep), call)) == "done"
    assert waits.seconds == [0.2, 0.4, 0.5]


def test_startup_gives_up_before_a_wait_would_pass_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]  # tenacity reads time.monotonic; the fake sleep advances this clock
    monkeypatch.setattr(tenacity.time, "monotonic", lambda: clock[0])
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    call = Flaky(*(OSError(f"refused {n}") for n in range(100)))
    with pytest.raises(OSError, match="refused 3"):
        for attempt in retry.startup((OSError,), 5.0, "x", sleep):
            with attempt:
                call()
    # 0.5 + 1 + 2 = 3.5 s of waits fit in 5 s; the next (4 s) would not: the last error raised.
    assert waits == [0.5, 1.0, 2.0] and call.calls == 4


def test_startup_does_not_retry_other_errors() -> None:
    waits = Waits()
    call = Flaky(ValueError("bad DSN"))
    with pytest.raises(ValueError):
        for attempt in retry.startup((OSError,), 60.0, "x", waits.sleep):
            with attempt:
                call()
    assert call.calls == 1 and waits.seconds == []


def test_delivery_backoff_doubles_from_retry_initial_up_to_retry_max() -> None:
    initial, maximum = timedelta(seconds=2), timedelta(minutes=5)
    waits = [retry.delivery_backoff(n, initial, maximum) for n in range(1, 11)]
    assert waits[:4] == [timedelta(seconds=s) for s in (2, 4, 8, 16)]
    assert waits[-1] == maximum and max(waits) == maximum
    assert retry.delivery_backoff(0, initial, maximum) == initial
