"""Delivering the outbox from a command (``reconcile alert --send``) without doubling a message.

Only the holder of the alerting lease sends (:data:`ALERTING_LEASE`, the lease every worker's
:class:`~spendstream.leadership.Elector` competes for). A command that enqueued alerts and wants
them out now competes for the same lease for as long as it waits:

- beside a running worker, the worker holds the lease and its dispatcher sends; the command only
  watches the outbox until its deliveries are done (or the deadline passes);
- with no worker, the command wins the lease, sends under its fence exactly as a worker would
  (a send starts only with a renewal period of authority left) and releases the lease on
  return, so a worker starting meanwhile takes over at once.

Either way one process sends, so a delivery goes out once (at least once at the channel, as
for every alert: see ``notifications.delivery``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from spendstream.config import LeadershipSettings
from spendstream.leadership import Elector, Fence, LeaseStore
from spendstream.notifications.delivery import Dispatcher
from spendstream.notifications.outbox import Outbox

# The lease whose holder runs alerting (evaluation, delivery, digests) among all workers.
ALERTING_LEASE = "evaluator"
FINAL_STATUSES = ("delivered", "failed", "silenced")


class _Holding:
    """A leader role that only remembers the fence of the term held (None when not held)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fence: Fence | None = None

    def start(self, fence: Fence) -> None:
        with self.lock:
            self.fence = fence

    def stop(self) -> None:
        with self.lock:
            self.fence = None

    def current(self) -> Fence | None:
        with self.lock:
            return self.fence


@dataclass(frozen=True)
class Outcome:
    """What became of the deliveries waited for: counts per status, and whether we sent."""

    counts: dict[str, int]
    sent_here: bool

    @property
    def delivered(self) -> int:
        return self.counts.get("delivered", 0)


def deliver_as_leader(
    store: Outbox,
    dispatcher: Dispatcher,
    leases: LeaseStore,
    leadership: LeadershipSettings,
    alert_ids: Sequence[str],
    expected: int,
    timeout_s: float,
    poll_s: float = 0.5,
) -> Outcome:
    """Wait up to ``timeout_s`` until the ``expected`` outbox rows of ``alert_ids`` are done,
    sending due deliveries only while this process holds :data:`ALERTING_LEASE` (competed for
    through ``leases``, a store on its own client: the elector runs in its own thread)."""
    holding = _Holding()
    elector = Elector(
        leases,
        ALERTING_LEASE,
        [holding],
        ttl_s=leadership.lease_ttl_s,
        renew_every_s=leadership.renew_every_s,
    )
    deadline = time.monotonic() + timeout_s
    sent_here = False
    elector.start()
    try:
        while True:
            fence = holding.current()
            if fence is not None and fence.valid(fence.margin_s):
                sent_here |= dispatcher.tick(may_send=partial(fence.valid, fence.margin_s)) > 0
            counts = store.delivery_counts(alert_ids)
            done = sum(counts.get(status, 0) for status in FINAL_STATUSES)
            if done >= expected or time.monotonic() >= deadline:
                return Outcome(counts, sent_here)
            time.sleep(poll_s)
    finally:
        elector.stop()  # releases the lease if we held it
