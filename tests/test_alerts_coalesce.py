"""Budget evaluations woken by batches are coalesced (``alerts.service.COALESCE_S``): the first
after a quiet spell at once, the next marks together once the interval has passed."""

from __future__ import annotations

import threading
import time

from spendstream.alerts.service import EvaluationLoop
from tests.support.worker import wait_until
from tests.test_alerts_lifecycle import RecordingEvaluator


def test_marks_after_an_evaluation_wait_for_the_interval_and_are_taken_together() -> None:
    evaluator = RecordingEvaluator()
    dispatcher_stub = type("D", (), {"wake_event": threading.Event()})()
    loop = EvaluationLoop(evaluator, 600, dispatcher_stub, coalesce_s=3)  # type: ignore[arg-type]
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: evaluator.calls == [None], 5, "the first full pass")
        loop.mark({"a"})  # a quiet spell before it: evaluated at once
        wait_until(lambda: {"a"} in evaluator.calls, 2, "budget a evaluated")
        loop.mark({"b"})
        loop.mark({"c"})
        time.sleep(0.5)  # a window in which nothing may happen: 3 s have not passed since a
        assert evaluator.calls == [None, {"a"}]
        loop.mark({"d"})
        wait_until(lambda: len(evaluator.calls) == 3, 10, "b, c and d evaluated")
        assert evaluator.calls[2] == {"b", "c", "d"}  # one evaluation for the three marks
    finally:
        loop.stop()
        thread.join(5)


def test_a_term_that_ended_takes_no_marks_from_the_next() -> None:
    """A new leader's loop shares the marks and the wake-up with the old term's thread, which
    may still be in its wait when the term ends: it must leave them to the new term."""
    evaluator = RecordingEvaluator()
    dispatcher_stub = type("D", (), {"wake_event": threading.Event()})()
    loop = EvaluationLoop(evaluator, 600, dispatcher_stub, coalesce_s=0)  # type: ignore[arg-type]
    old_term = threading.Event()
    thread = threading.Thread(target=loop.run, args=(old_term,), daemon=True)
    thread.start()
    wait_until(lambda: evaluator.calls == [None], 5, "the old term's first full pass")
    old_term.set()  # the term ends while its thread waits for a mark
    loop.mark({"a"})  # a batch marks a budget for the next term
    thread.join(5)
    assert not thread.is_alive()
    assert evaluator.calls == [None]  # the old term evaluated nothing more
    assert loop.dirty == {"a"}  # and left the mark for the new term
