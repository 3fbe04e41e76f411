"""Delivery of the alert outbox through Apprise, with retries and grouping.

The dispatcher polls ``alert_deliveries`` for due rows, groups them per channel (alerts created
within ``group_wait`` of each other go out as one message), sends, and records the outcome:
``delivered``, or ``pending`` again with ``attempts + 1`` and an exponential back-off, or
``failed`` once ``give_up_after`` has passed. A delivery for a budget silenced meanwhile is
recorded as ``silenced`` and not sent. State lives in ClickHouse, so a restarted worker resumes.

Delivery is at-least-once at the channel: if the process dies between a successful send and the
``delivered`` write (a few milliseconds), that one message is sent again after restart.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import apprise

from spendstream import retry
from spendstream.config import redact_text, url_secrets
from spendstream.logs import get_logger
from spendstream.notifications.config import DeliverySettings
from spendstream.notifications.outbox import Outbox
from spendstream.notifications.records import Delivery, Notification
from spendstream.periods import utc_now
from spendstream.sinks.versions import next_version

log = get_logger(__name__)

SendResult = tuple[bool, str]


class Notifier:
    """Sends a message to a named channel (an Apprise URL from ``[alerts.channels]``)."""

    def __init__(self, config: DeliverySettings) -> None:
        self.config = config

    def plugin(self, channel: str) -> apprise.Apprise:
        url = self.config.channels[channel]
        instance = apprise.Apprise.instantiate(url)
        if instance is None:
            raise ValueError(f"channel {channel!r}: invalid Apprise URL")
        base = self.config.slack_webhook_base
        if base and url.startswith("slack://"):
            # Slack-compatible relay (and tests). Apprise offers no public setting for this:
            # the Slack plugin's endpoint is a class attribute (apprise/plugins/slack.py,
            # `webhook_url`) with no URL parameter, so the one instance gets its own value.
            setattr(instance, "webhook_url", base.rstrip("/"))  # noqa: B010
        sender = apprise.Apprise()
        sender.add(instance)
        return sender

    def send(self, channel: str, title: str, body: str) -> SendResult:
        """Send once; returns ``(ok, error text)`` with Apprise's own warnings as the error."""
        try:
            sender = self.plugin(channel)
        except (KeyError, ValueError) as exc:
            return False, str(exc)
        with apprise.LogCapture(level=logging.WARNING) as captured:
            ok = sender.notify(body=body, title=title, body_format=apprise.NotifyFormat.MARKDOWN)
            errors = captured.getvalue().strip()
        if ok:
            return True, ""
        # Apprise's warnings may quote the channel URL: stored and logged without its secrets.
        secrets = url_secrets(self.config.channels[channel], address=False)
        return False, redact_text(errors or "apprise reported failure", secrets)[-500:]


def render_group(alerts: Sequence[Notification]) -> tuple[str, str]:
    """One message for several alerts going to the same channel together."""
    if len(alerts) == 1:
        return alerts[0].title, alerts[0].body
    budgets = sorted({a.budget for a in alerts})
    title = f"[spendstream] {len(alerts)} budget alerts: {', '.join(budgets)}"
    return title, "\n\n---\n\n".join(a.body for a in alerts)


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
        send: Callable[[str, str, str], SendResult] | None = None,
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
        updates: list[Delivery] = []
        for delivery, alert in due:
            if alert.budget in silenced:
                updates.append(self._mark(delivery, now, "silenced", "budget silenced"))
            else:
                by_channel[delivery.channel].append((delivery, alert))
        delivered = 0
        for channel, items in by_channel.items():
            if not may_send():
                log.warning("not the alerting leader any more; leaving deliveries pending")
                break
            title, body = render_group([alert for _, alert in items])
            ok, error = self.send(channel, title, body)
            attempted = now if ok else utc_now()
            for delivery, _ in items:
                updates.append(self._outcome(delivery, ok, error, attempted))
            delivered += len(items) if ok else 0
            log.info(
                "alert delivery" if ok else "alert delivery failed",
                channel=channel,
                alerts=[alert.alert_id for _, alert in items],
                attempt=items[0][0].attempts + 1,
                error=error or None,
            )
        self.store.update_deliveries(updates)
        return delivered

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
