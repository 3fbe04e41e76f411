"""One typed record per notification kind that is not a budget alert.

A producer builds its record (what happened, in its own words and figures, plus the rendered
``title``/``body`` and the ``channels``) and calls ``outbox.enqueue(record)``; the outbox
stores it once (:attr:`notification_id` is deterministic) with one delivery per channel.
The stored row (:class:`~spendstream.notifications.records.Notification`, table ``alerts``)
has budget-shaped figure columns; :meth:`row` fills only those that mean what their name says
(``spend`` is USD spent or billed, ``limit_usd`` a USD limit, ``percent`` a percentage of it)
and leaves the others at zero.

Budget alerts (threshold, forecast, spike, reminder, prompt_growth) are built by
:class:`~spendstream.alerts.evaluator.BudgetEvaluator` as rows directly: those columns are
theirs. A new kind (anomaly, runaway_run…) adds a record here satisfying
:class:`NotificationRecord` and its name to ``NotificationKind`` (docs/notifications.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

from spendstream.notifications.records import Notification, NotificationKind, NotificationState
from spendstream.sinks.versions import next_version

ZERO = Decimal(0)
PERCENT_BOUND = Decimal(10) ** 15  # alerts.percent is Decimal(18, 2)


class NotificationRecord(Protocol):
    """What :meth:`~spendstream.notifications.outbox.Outbox.enqueue` takes."""

    @property
    def notification_id(self) -> str: ...
    @property
    def channels(self) -> tuple[str, ...]: ...
    def row(self, now: datetime) -> Notification: ...


def bounded_percent(value: Decimal | None) -> Decimal:
    """A percentage storable in ``alerts.percent`` (a cent invoiced against dollars)."""
    return max(min(value or ZERO, PERCENT_BOUND), -PERCENT_BOUND)


@dataclass(frozen=True, kw_only=True)
class NotificationBase:
    """The fields every kind has; a kind adds its own and a ``row`` calling :meth:`stored_row`."""

    notification_id: str
    subject: str  # what it is about: a budget, a quota, a reconciliation cell, "digest"
    channels: tuple[str, ...]
    period_start: datetime
    period_end: datetime
    title: str
    body: str

    def stored_row(
        self,
        now: datetime,
        kind: NotificationKind,
        state: NotificationState = "firing",
        **figures: object,
    ) -> Notification:
        return Notification.model_validate(
            {
                "alert_id": self.notification_id,
                "budget": self.subject,
                "kind": kind,
                "period_start": self.period_start,
                "period_end": self.period_end,
                "state": state,
                "channels": list(self.channels),
                "spend": ZERO,
                "limit_usd": ZERO,
                "percent": ZERO,
                "title": self.title,
                "body": self.body,
                "note": "" if self.channels else "no channels configured",
                "created_at": now,
                "updated_at": now,
                "resolved_at": now if state == "resolved" else None,
                "version": next_version(),
                **figures,
            }
        )


QuotaAction = Literal["block", "unblock", "warn", "clear", "throttle", "unthrottle"]


@dataclass(frozen=True, kw_only=True)
class QuotaTransition(NotificationBase):
    """A quota (``subject``) blocked, unblocked, over its warning or back under, throttled or
    no longer throttled, for ``key``."""

    action: QuotaAction
    key: str
    owner: str
    scope: str
    unit: str  # "usd", "tokens", "requests" or a usage unit
    used: Decimal
    limit: Decimal

    def row(self, now: datetime) -> Notification:
        firing = self.action in ("block", "warn", "throttle")
        usd = self.unit == "usd"
        return self.stored_row(
            now,
            "quota_block" if firing else "quota_unblock",
            "firing" if firing else "resolved",
            owner=self.owner,
            scope=self.scope,
            spend=self.used if usd else ZERO,
            limit_usd=self.limit if usd else ZERO,
            percent=(self.used * 100 / self.limit).quantize(Decimal("0.01"))
            if self.limit
            else ZERO,
            resolved_at=None,
        )


@dataclass(frozen=True, kw_only=True)
class ReconciliationGap(NotificationBase):
    """A provider bill and our estimate of one cell (day, provider, account, model) differ."""

    provider: str
    invoiced_usd: Decimal
    our_usd: Decimal
    percent: Decimal | None  # of the invoice

    def row(self, now: datetime) -> Notification:
        return self.stored_row(
            now,
            "reconciliation",
            scope=f"provider={self.provider}",
            spend=self.invoiced_usd,
            percent=bounded_percent(self.percent),
        )


@dataclass(frozen=True, kw_only=True)
class Digest(NotificationBase):
    """The periodic digest: the period's spend, opportunities and changes, in ``body``."""

    every: str
    spend: Decimal

    def row(self, now: datetime) -> Notification:
        return self.stored_row(now, "digest", "resolved", spend=self.spend, note="digest")


@dataclass(frozen=True, kw_only=True)
class RunawayRun(NotificationBase):
    """An agent run (``subject``: ``run/<agent>/<run_id>``) beyond its agent's p95 cost times N
    or over K steps (``spendstream.alerts.runaway``); ``body`` carries its step breakdown."""

    agent: str
    run_id: str
    team: str
    cost: Decimal
    steps: int
    cost_limit: Decimal | None  # N x the agent's p95 cost per run, when that is what it broke

    def row(self, now: datetime) -> Notification:
        return self.stored_row(
            now,
            "runaway_run",
            scope=f"agent={self.agent},run_id={self.run_id}",
            spend=self.cost,
            limit_usd=self.cost_limit or ZERO,
            percent=bounded_percent(
                (self.cost * 100 / self.cost_limit).quantize(Decimal("0.01"))
                if self.cost_limit
                else None
            ),
        )
