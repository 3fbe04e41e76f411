"""Delivery of the outbox (every kind of notification) through Apprise, with retries and grouping.

The dispatcher polls ``alert_deliveries`` for due rows, groups them per channel (notifications
created within ``group_wait`` of each other go out as one message), and for each channel:

1. **claims** the deliveries (a row whose ``next_attempt_at`` is pushed past the longest a send
   can take, :func:`claim_window`), so no other sender (a new leader, a command) takes them
   while this send is in flight, and a failed claim write sends nothing;
2. sends once (bounded by ``send_timeout``; webhooks get an idempotency key,
   :mod:`spendstream.notifications.channels`);
3. records the outcome at once (retried until the claim would lapse): ``delivered``, or
   ``pending`` again with ``attempts + 1`` and the delivery back-off (``spendstream.retry``), or
   ``failed`` once ``give_up_after`` has passed.

A delivery for a subject silenced meanwhile is recorded as ``silenced`` and not sent. State
lives in ClickHouse, so a restarted worker resumes.

Delivery is at-least-once at the channel. What remains of the window: the process dies between
the channel accepting and the outcome write (milliseconds), or ClickHouse refuses that write
for the whole claim window, or the channel accepts but its answer is lost or later than
``send_timeout`` (recorded as a failure). Then the message is sent again once the claim lapses;
a webhook receiver can drop the repeat by its idempotency key, Slack and e-mail cannot.
"""

from __future__ import annotations

import hashlib
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from spendstream import retry
from spendstream.logs import get_logger
from spendstream.notifications.channels import Notifier, SendResult
from spendstream.notifications.config import DeliverySettings
from spendstream.notifications.outbox import Outbox
from spendstream.notifications.records import Delivery, Notification
from spendstream.notifications.text import inert
from spendstream.periods import utc_now
from spendstream.sinks.versions import next_version

log = get_logger(__name__)


# What a group's title calls each kind (singular, plural), in the order a group lists them:
# budget thresholds first (ascending), then the other kinds.
KIND_NOUNS: dict[str, tuple[str, str]] = {
    "threshold": ("budget threshold alert", "budget threshold alerts"),
    "reminder": ("budget reminder", "budget reminders"),
    "forecast": ("forecast alert", "forecast alerts"),
    "spike": ("spend spike", "spend spikes"),
    "prompt_growth": ("prompt growth alert", "prompt growth alerts"),
    "quota_block": ("quota alert", "quota alerts"),
    "quota_unblock": ("quota all-clear", "quota all-clears"),
    "reconciliation": ("reconciliation gap", "reconciliation gaps"),
    "anomaly": ("anomaly", "anomalies"),
    "runaway_run": ("runaway run", "runaway runs"),
    "digest": ("digest", "digests"),
}
KIND_RANK = {kind: rank for rank, kind in enumerate(KIND_NOUNS)}


def group_order(alert: Notification) -> tuple[int, int, str, datetime, str]:
    """Thresholds ascending, then the other kinds; ties by subject, then time and id."""
    rank = KIND_RANK.get(alert.kind, len(KIND_RANK))
    return rank, alert.threshold, alert.budget, alert.period_start, alert.alert_id


def render_group(alerts: Sequence[Notification]) -> tuple[str, str]:
    """One message for several notifications going to the same channel together: the title
    counts them by kind (``3 budget threshold alerts, 1 spend spike: ...``), the body holds
    them in :func:`group_order`, whatever order they were stored in."""
    if len(alerts) == 1:
        return alerts[0].title, alerts[0].body
    ordered = sorted(alerts, key=group_order)
    counts: dict[str, int] = {}
    for alert in ordered:
        counts[alert.kind] = counts.get(alert.kind, 0) + 1
    kinds = ", ".join(
        f"{n} {KIND_NOUNS.get(kind, (kind, kind))[n != 1]}" for kind, n in counts.items()
    )
    subjects = sorted({a.budget for a in alerts})
    # Subjects may carry text from events (a runaway run's agent and run id): inert.
    title = f"[spendstream] {kinds}: {', '.join(map(inert, subjects))}"
    return title, "\n\n---\n\n".join(a.body for a in ordered)


def idempotency_key(channel: str, alert_ids: Sequence[str]) -> str:
    """The same key for every attempt at the same notifications on ``channel``."""
    return hashlib.sha256("|".join([channel, *sorted(alert_ids)]).encode()).hexdigest()[:32]


def claim_window(config: DeliverySettings) -> timedelta:
    """How long a claim keeps other senders off: longer than a send can take (connect and
    read, each bounded by ``send_timeout``) with room to record the outcome."""
    return 2 * config.delivery.send_timeout + timedelta(seconds=5)


def always() -> bool:
    return True


def backoff(attempts: int, config: DeliverySettings) -> timedelta:
    """Delay before attempt ``attempts + 1``: the delivery policy (``spendstream.retry``)."""
    return retry.delivery_backoff(
        attempts, config.delivery.retry_initial, config.delivery.retry_max
    )


class Dispatcher:
    """Sends due deliveries. :meth:`tick` is one pass; :meth:`run` loops until stopped."""

    def __init__(
        self,
        store: Outbox,
        config: DeliverySettings,
        send: Callable[[str, str, str, str], SendResult] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.send = send or Notifier(config).send
        self.stop_event = threading.Event()
        self.wake_event = threading.Event()

    def tick(self, now: datetime | None = None, may_send: Callable[[], bool] = always) -> int:
        """Attempt every due delivery once; return how many were delivered. ``may_send`` is
        the leadership fence, asked before every send: once it says no, nothing more is sent
        (a deposed leader must not double a message)."""
        now = now or utc_now()
        due = self.store.due_deliveries(now, self.config.group_wait)
        if not due:
            return 0
        silenced = self.store.active_silences(now)
        by_channel: dict[str, list[tuple[Delivery, Notification]]] = defaultdict(list)
        updates: list[Delivery] = []  # silenced meanwhile: recorded, never sent
        for delivery, alert in due:
            if alert.budget in silenced:
                updates.append(self._mark(delivery, now, "silenced", f"{alert.budget} silenced"))
            else:
                by_channel[delivery.channel].append((delivery, alert))
        self.store.update_deliveries(updates)
        delivered = 0
        for channel, items in by_channel.items():
            if not may_send():
                log.warning("not the alerting leader any more; leaving deliveries pending")
                break
            alerts = [alert for _, alert in items]
            claimed = [self._claim(delivery, now) for delivery, _ in items]
            self.store.update_deliveries(claimed)  # raises: nothing sent
            title, body = render_group(alerts)
            key = idempotency_key(channel, [alert.alert_id for alert in alerts])
            ok, error = self.send(channel, title, body, key)
            attempted = now if ok else utc_now()
            self._record([self._outcome(d, ok, error, attempted) for d in claimed])
            delivered += len(items) if ok else 0
            log.info(
                "alert delivery" if ok else "alert delivery failed",
                channel=channel,
                alerts=[alert.alert_id for _, alert in items],
                attempt=items[0][0].attempts + 1,
                error=error or None,
            )
        return delivered

    def _claim(self, delivery: Delivery, now: datetime) -> Delivery:
        """The delivery taken for a send: not due again before the claim window passes."""
        return delivery.model_copy(
            update={
                "next_attempt_at": utc_now() + claim_window(self.config),
                "last_attempt_at": now,
                "version": next_version(),
            }
        )

    def _record(self, outcomes: Sequence[Delivery]) -> None:
        """Write what a send did, retrying (transient storage errors) while the claim holds."""
        policy = retry.recording(claim_window(self.config).total_seconds() / 2)
        for attempt in policy:
            with attempt:
                self.store.update_deliveries(outcomes)

    def _mark(self, delivery: Delivery, now: datetime, status: str, error: str) -> Delivery:
        return delivery.model_copy(
            update={"status": status, "last_error": error, "version": next_version()}
        )

    def _outcome(self, delivery: Delivery, ok: bool, error: str, now: datetime) -> Delivery:
        attempts = delivery.attempts + 1
        status = "delivered" if ok else "pending"
        if not ok and now - delivery.created_at >= self.config.delivery.give_up_after:
            status = "failed"
        return delivery.model_copy(
            update={
                "status": status,
                "attempts": attempts,
                "last_error": error,
                "last_attempt_at": now,
                "delivered_at": now if ok else None,
                "next_attempt_at": now + backoff(attempts, self.config),
                "version": next_version(),
            }
        )

    def run(
        self, stop: threading.Event | None = None, may_send: Callable[[], bool] = always
    ) -> None:
        """Loop until :meth:`stop` (or ``stop`` is set); errors (e.g. ClickHouse busy) are
        logged and retried. ``may_send``: see :meth:`tick`."""
        stop = stop or self.stop_event
        while not stop.is_set():
            try:
                self.tick(may_send=may_send)
            except Exception as exc:
                log.warning("alert dispatcher pass failed", error=str(exc)[:300])
            self.wake_event.wait(self.config.delivery.poll_every.total_seconds())
            self.wake_event.clear()

    def stop(self) -> None:
        self.stop_event.set()
        self.wake_event.set()
