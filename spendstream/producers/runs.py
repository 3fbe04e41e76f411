"""Agent runs in the SDK: ``with recorder.run(agent="triage", customer="acme") as run:``.

Inside the block every ``record()`` carries the run's ids (``run_id``, ``agent``, ``customer``,
``session_id``, ``trace_id``, ``parent``) and the next ``step`` number; ``admit()`` and
``guard()`` match quotas on them (``group_by = ["run_id"]``, ``scope = {agent = "triage"}``);
``outcome()`` carries them as tags. ``run.cost`` is the run's running total as this process
priced its calls (the ledger's exact figure follows within the stream's delay).

Propagation follows :mod:`contextvars` (docs/sdk.md "Agent runs"):

- asyncio tasks created inside the block inherit the run (a task copies its creator's context);
- threads do NOT inherit it on CPython 3.11-3.13: a thread starts with an empty context. Start
  the thread's work with ``contextvars.copy_context().run(fn)`` (or ``run.attach()`` inside the
  thread, or an executor's ``submit(copy_context().run, fn)``): the copy holds the same
  :class:`Run` object, so steps and cost add up across threads (under a lock);
- ``os.fork()`` inside the block: the child continues the run (same ids; its own step counter and
  running cost continue from the parent's at the fork, so the child's and the parent's later
  steps may share a number; views order steps by time). A new process started by ``spawn`` or a
  remote worker does not inherit anything: pass ``run.ids`` and re-enter with
  ``recorder.run(**run.ids)``.

A run inside another run is a sub-run: its own ``run_id``, ``parent`` = the enclosing run's id,
and the enclosing run's customer, session and trace unless given. Each event belongs to exactly
one run, so ``run.cost`` counts the run's own calls (a sub-run's calls are in the sub-run's).
"""

from __future__ import annotations

import os
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from typing import Any

from spendstream.events import UsageEvent

CostOf = Callable[[UsageEvent], Decimal]
# The ids a run stamps on its events and quotas can group by (besides step).
RUN_ID_FIELDS = ("run_id", "agent", "customer", "session_id", "trace_id", "parent")

_CURRENT: ContextVar[Run | None] = ContextVar("spendstream_run", default=None)
_LIVE: weakref.WeakSet[Run] = weakref.WeakSet()  # runs whose locks a forked child renews


class Run:
    """One agent invocation as the app sees it: its ids, step counter and running totals.

    Thread-safe: steps and totals are updated under a lock (threads sharing the run through a
    copied context)."""

    def __init__(self, ids: dict[str, str]) -> None:
        self.ids = dict(ids)  # validated RUN_ID_FIELDS values; re-enter elsewhere with run(**ids)
        self.run_id = ids["run_id"]
        self._lock = threading.Lock()
        self._steps = 0
        self._cost = Decimal(0)
        self._tokens = 0
        self._unpriced = 0
        _LIVE.add(self)

    @property
    def cost(self) -> Decimal:
        """USD of the calls recorded in this run so far (priced in-process)."""
        return self._cost

    @property
    def steps(self) -> int:
        """Events recorded in this run so far (model calls and tool calls)."""
        return self._steps

    @property
    def tokens(self) -> int:
        """Input plus output tokens recorded in this run so far."""
        return self._tokens

    @property
    def unpriced(self) -> int:
        """Events this process could not price (counted in ``steps``, not in ``cost``)."""
        return self._unpriced

    def next_step(self) -> int:
        with self._lock:
            self._steps += 1
            return self._steps

    def added(self, event: UsageEvent, cost: Decimal | None) -> None:
        """Count a recorded event's tokens and cost (None: could not be priced here)."""
        with self._lock:
            self._tokens += event.input_tokens + event.output_tokens
            if cost is None:
                self._unpriced += 1
            else:
                self._cost += cost

    def event_fields(self) -> dict[str, str]:
        """The fields stamped on each event of the run (besides ``step``)."""
        return self.ids

    def quota_values(self) -> dict[str, str]:
        """What admission matches quotas on, next to the tags (``run_id``, ``agent``, ...)."""
        return self.ids

    @contextmanager
    def attach(self) -> Iterator[Run]:
        """Make this run current in another thread (``with run.attach():`` in the thread)."""
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)

    def __repr__(self) -> str:
        return f"Run({self.ids!r}, steps={self._steps}, cost={self._cost})"


def new_run(
    run_id: str | None = None,
    agent: str | None = None,
    customer: str | None = None,
    session_id: str | None = None,
    trace_id: str | None = None,
    parent: str | None = None,
) -> Run:
    """A run with validated ids (raises ``pydantic.ValidationError`` on a bad one): a fresh
    ``run_id`` unless given; inside another run, a sub-run (see the module docstring)."""
    outer = _CURRENT.get()
    given: dict[str, Any] = {
        "run_id": run_id or uuid.uuid4().hex,
        "agent": agent,
        "customer": customer,
        "session_id": session_id,
        "trace_id": trace_id,
        "parent": parent or (outer.run_id if outer is not None else None),
    }
    if outer is not None:
        for name in ("customer", "session_id", "trace_id"):
            if given[name] is None:
                given[name] = outer.ids.get(name)
    # Validate like the event would: one bad id fails here, not silently on every record().
    probe = UsageEvent.model_validate(
        {"provider": "probe", "model": "probe", **{k: v for k, v in given.items() if v}}
    )
    return Run({name: getattr(probe, name) for name in RUN_ID_FIELDS if getattr(probe, name)})


@contextmanager
def entered(run: Run) -> Iterator[Run]:
    token = _CURRENT.set(run)
    try:
        yield run
    finally:
        _CURRENT.reset(token)


def _renew_locks_in_child() -> None:
    # A lock held by another thread at fork() would stay held forever in the child.
    for run in list(_LIVE):
        run._lock = threading.Lock()


os.register_at_fork(after_in_child=_renew_locks_in_child)


def current_run() -> Run | None:
    """The run of the calling context, or None outside any ``recorder.run()`` block."""
    return _CURRENT.get()


def stamp_fields(run: Run, fields: dict[str, Any]) -> None:
    """Give an event being built the run's ids and its next step (fields given win)."""
    for name, value in run.event_fields().items():
        fields.setdefault(name, value)
    if fields.get("step") is None:
        fields["step"] = run.next_step()


def stamp_event(run: Run, event: UsageEvent) -> UsageEvent:
    """A ready event with the run's ids and next step where it has none."""
    update: dict[str, Any] = {
        name: value for name, value in run.event_fields().items() if getattr(event, name) is None
    }
    if event.step is None:
        update["step"] = run.next_step()
    return event.model_copy(update=update) if update else event


def with_run_values(run: Run | None, tags: dict[str, str]) -> dict[str, str]:
    """``tags`` plus the run's ids admission and outcomes match on (the run's ids win over tags
    of the same name, as the ledger's columns do)."""
    if run is None:
        return tags
    return {**tags, **run.quota_values()}


def event_quota_values(event: UsageEvent) -> dict[str, str]:
    """A recorded event's tags plus its run ids, as :func:`with_run_values` gives admit()."""
    ids = {name: value for name in RUN_ID_FIELDS if (value := getattr(event, name))}
    return {**event.tags, **ids} if ids else event.tags


__all__ = ["RUN_ID_FIELDS", "Run", "current_run", "new_run"]
