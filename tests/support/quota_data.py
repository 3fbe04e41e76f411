"""Sample quota specs, decisions and snapshots for admission tests and benchmarks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from spendstream.decisions import DecisionsMessage, QuotaDecision, QuotaSpec

SPECS = (
    QuotaSpec(
        name="user-daily",
        scope={"team": ("support",)},
        group_by=("user",),
        unit="usd",
        limit=Decimal(1),
        per="day",
    ),
    QuotaSpec(
        name="rpm",
        scope={"app": ("bot",)},
        unit="requests",
        limit=Decimal(3),
        per="minute",
        when_stale="closed",
    ),
)


def decision(
    key: str, used: str, over: bool, as_of: datetime | None = None, **extra: object
) -> QuotaDecision:
    # Times from the moment of the call, not of import: a suite may run for many minutes.
    now = datetime.now(UTC)
    values: dict[str, object] = dict(
        quota="user-daily",
        key=key,
        unit="usd",
        allowed=not over,
        over=over,
        used=Decimal(used),
        limit=Decimal(1),
        remaining=max(Decimal(1) - Decimal(used), Decimal(0)),
        period_start=now - timedelta(hours=1),
        resets_at=now + timedelta(hours=1),
        as_of=as_of or now,
        reason=f"quota user-daily for {key}: {used}",
    )
    values.update(extra)
    return QuotaDecision.model_validate(values)


def snapshot(
    *decisions: QuotaDecision,
    published: datetime | None = None,
    specs: tuple[QuotaSpec, ...] = SPECS,
) -> DecisionsMessage:
    return DecisionsMessage(
        kind="snapshot",
        published_at=published or datetime.now(UTC),
        specs=specs,
        decisions=decisions,
    )
