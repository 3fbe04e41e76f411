"""Notification, delivery and silence records (rows of the tables in ``notifications.schema``).

:class:`Notification` is the stored row of every kind (table ``alerts``); producers other than
budget evaluation do not build it themselves: they hand a typed record
(:mod:`spendstream.notifications.kinds`) to ``Outbox.enqueue``.

A notification's id is a pure function of what it is about: ``hash(budget, kind, period_start,
threshold, extra)``. Re-evaluating the same spend (replays, restarts) therefore names the same
alert, which already exists, so nothing new is created or sent.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from spendstream.notifications.schema import ALERT_COLUMNS, DELIVERY_COLUMNS, SILENCE_COLUMNS

NotificationKind = Literal[
    "threshold",
    "forecast",
    "spike",
    "reminder",
    "reconciliation",
    "quota_block",
    "quota_unblock",
    "prompt_growth",
    "digest",
    "anomaly",
    "runaway_run",
]
NotificationState = Literal["firing", "resolved", "silenced"]
DeliveryStatus = Literal["pending", "delivered", "failed", "silenced"]


def alert_id(
    budget: str, kind: str, period_start: datetime, threshold: int = 0, extra: str = ""
) -> str:
    """The deterministic id of an alert (32 hex characters)."""
    key = f"{budget}|{kind}|{period_start.astimezone(UTC).isoformat()}|{threshold}|{extra}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class Record(BaseModel):
    model_config = ConfigDict(frozen=True)
    columns: ClassVar[tuple[str, ...]] = ()

    @field_validator("*", mode="after")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        # ClickHouse returns DateTime64(3, 'UTC') values without a zone: they are UTC.
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    def row(self) -> list[Any]:
        return [getattr(self, name) for name in self.columns]

    @classmethod
    def from_row(cls, columns: list[str], row: list[Any]) -> Any:
        return cls.model_validate(dict(zip(columns, row, strict=True)))


class Notification(Record):
    columns: ClassVar[tuple[str, ...]] = ALERT_COLUMNS
    alert_id: str
    budget: str
    kind: NotificationKind
    threshold: int = 0
    period_start: datetime
    period_end: datetime
    state: NotificationState = "firing"
    owner: str = ""
    scope: str = ""
    channels: list[str] = []
    spend: Decimal
    limit_usd: Decimal
    percent: Decimal
    forecast_usd: Decimal | None = None
    overrun_at: datetime | None = None
    title: str
    body: str
    note: str = ""
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None = None
    version: int


class Delivery(Record):
    columns: ClassVar[tuple[str, ...]] = DELIVERY_COLUMNS
    alert_id: str
    channel: str
    budget: str
    status: DeliveryStatus = "pending"
    attempts: int = 0
    last_error: str = ""
    created_at: datetime
    next_attempt_at: datetime
    last_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    version: int


class Silence(Record):
    columns: ClassVar[tuple[str, ...]] = SILENCE_COLUMNS
    budget: str
    until: datetime
    reason: str = ""
    created_by: str = ""
    created_at: datetime
    version: int

    def active(self, now: datetime) -> bool:
        return self.until > now
