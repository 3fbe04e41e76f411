"""Exactly one holder of a role among any number of workers, with failover and fencing.

:class:`Elector` runs one thread per process and role name. Every ``renew_every`` it reads the
role's lease (:class:`~.lease.LeaseStore`):

- holding it, it renews; if a newer term exists (we were silent too long) it steps down;
- not holding it, it claims ``term + 1`` once the lease is released or silent for ``ttl``.

On winning it calls ``start(fence)`` on each :class:`LeaderRole`, on losing ``stop()``.

Fencing: a holder's authority ends at ``t0 + ttl - renew_every`` on its own monotonic clock,
where ``t0`` is when its last successful renewal *started* (the server recorded it later, and a
successor waits ``ttl`` of server time after that). :class:`Fence` answers "may I still act?" and
is checked before every side effect that must not be doubled (e.g. each alert send); a paused
or partitioned holder therefore stops before anyone else starts. The term is the fencing token.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

from spendstream.leadership.lease import LeaseStore
from spendstream.logs import get_logger

log = get_logger(__name__)


class Fence:
    """The right to act in one term; :meth:`valid` turns False for good once it lapses.

    ``margin_s`` (one renewal period) is how much authority an action should have left when it
    starts: a successor claims no sooner than ``renew_every`` after our authority ends, so an
    action started with ``valid(margin_s)`` that finishes within ``2 x renew_every`` is never
    concurrent with the successor's.
    """

    def __init__(self, elector: Elector, term: int) -> None:
        self.elector = elector
        self.term = term
        self.margin_s = elector.renew_every_s

    def valid(self, margin_s: float = 0.0) -> bool:
        """True while this term is held and will be for at least ``margin_s`` more seconds."""
        return self.elector.holds(self.term, margin_s)


class LeaderRole(Protocol):
    """Work that must run on exactly one process (alert evaluation and delivery, …)."""

    def start(self, fence: Fence) -> None:
        """Begin; must return promptly (start threads)."""
        ...

    def stop(self) -> None:
        """Stop and wait for in-flight work; no side effect may follow the return."""
        ...


def holder_id() -> str:
    """Unique per process: host, pid and a random suffix (a reused pid is a new holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Elector:
    """Competes for the role ``name`` and runs ``roles`` while holding it."""

    def __init__(
        self,
        store: LeaseStore,
        name: str,
        roles: Sequence[LeaderRole],
        ttl_s: float = 5.0,
        renew_every_s: float = 1.0,
        holder: str | None = None,
    ) -> None:
        if renew_every_s * 3 > ttl_s:
            raise ValueError(f"lease ttl ({ttl_s}s) must be at least 3 x renew_every")
        self.store = store
        self.name = name
        self.roles = tuple(roles)
        self.ttl = timedelta(seconds=ttl_s)
        self.renew_every_s = renew_every_s
        self.holder = holder or holder_id()
        self.term = 0  # 0: not holding
        self.deadline = 0.0  # monotonic end of authority while holding
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def holds(self, term: int, margin_s: float = 0.0) -> bool:
        with self.lock:
            return self.term == term != 0 and time.monotonic() + margin_s < self.deadline

    @property
    def leading(self) -> bool:
        with self.lock:
            return self.term != 0 and time.monotonic() < self.deadline

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name=f"elector-{self.name}", daemon=True)
        self.thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the roles, release the lease (a successor takes over at once) and the thread."""
        self.stopped.set()
        if self.thread is not None:
            self.thread.join(timeout_s)
            self.thread = None

    def run(self) -> None:
        while not self.stopped.is_set():
            self.step()
            self.stopped.wait(self.renew_every_s)
        term = self.term
        if term:
            self._step_down("stopping")
            try:
                self.store.renew(self.name, term, self.holder, released=True)
            except Exception as exc:  # a successor then waits for the lease to expire
                log.warning("lease release failed", role=self.name, error=str(exc)[:200])

    def step(self) -> None:
        """One round: renew or claim, then step down if authority lapsed."""
        started = time.monotonic()
        try:
            state = self.store.state(self.name)
            if self.term and (state.term != self.term or state.holder != self.holder):
                self._step_down(f"term {state.term} now held by {state.holder}")
            elif self.term:
                self.store.renew(self.name, self.term, self.holder)
                self._extend(started)
            elif state.expired(self.ttl) and self.store.claim(
                self.name, state.term + 1, self.holder
            ):
                self._take(state.term + 1, started)
        except Exception as exc:
            log.warning("leadership round failed", role=self.name, error=str(exc)[:200])
        if self.term and time.monotonic() >= self.deadline:
            self._step_down("lease not renewed in time")

    def _extend(self, started: float) -> None:
        with self.lock:
            self.deadline = started + self.ttl.total_seconds() - self.renew_every_s

    def _take(self, term: int, started: float) -> None:
        with self.lock:
            self.term = term
        self._extend(started)
        log.info("leadership acquired", role=self.name, term=term, holder=self.holder)
        fence = Fence(self, term)
        for role in self.roles:
            try:
                role.start(fence)
            except Exception:
                log.exception("leader role failed to start", role=type(role).__name__)

    def _step_down(self, why: str) -> None:
        with self.lock:
            term, self.term, self.deadline = self.term, 0, 0.0
        log.warning("leadership lost", role=self.name, term=term, reason=why)
        for role in self.roles:
            try:
                role.stop()
            except Exception:
                log.exception("leader role failed to stop", role=type(role).__name__)
