"""What a recommendation is: one row of advice, its evidence, its state and its dollars.

Projected savings per month are the saving the insight found over the last ``days`` days,
scaled to a 30-day month: ``saving x 30 / days``, rounded half-even to the ledger's 18 decimals
(the one rounding; every other figure is exact).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any
from urllib.parse import urlencode

ATTO = Decimal("1e-18")
MONTH_DAYS = 30
STATES = ("open", "accepted", "dismissed")
PRICE_CAVEAT = (
    "price estimate at the prices in force (list prices and negotiated overrides); "
    "says nothing about answer quality"
)
LIST_CAVEAT = "price estimate at catalog list prices; says nothing about answer quality"


def utc_moment(moment: datetime) -> datetime:
    """``moment`` in UTC (a time without a zone is read as UTC); ValueError outside the years
    1970 to 2200, which the ledger's DateTime64 cannot hold."""
    if not 1970 <= moment.year <= 2200:
        raise ValueError(f"{moment.isoformat()}: give a time between 1970 and 2200")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def monthly(saving: Decimal, days: int) -> Decimal:
    """``saving`` over ``days`` days as dollars per 30-day month (half-even to 1e-18)."""
    with localcontext() as context:
        context.prec = 80
        return (saving * MONTH_DAYS / days).quantize(ATTO, ROUND_HALF_EVEN)


def rec_id(kind: str, scope: dict[str, str]) -> str:
    """A stable id: the same advice on the same scope keeps its id (and its state) across runs."""
    text = kind + "\x00" + "\x00".join(f"{k}={v}" for k, v in sorted(scope.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def explore_link(scope: dict[str, str], since: datetime, until: datetime) -> str:
    """The dashboard's Explore view of the scope's spend by model per day over the period."""
    filters = ", ".join(
        f"{k}={v}" for k, v in scope.items() if k in ("team", "app", "feature", "provider", "model")
    )
    query = {
        "by": "model",
        "filters": filters,
        "granularity": "day",
        "since": since.isoformat(),
        "until": until.isoformat(),
    }
    return "/explore?" + urlencode(query)


@dataclass(frozen=True)
class Alternative:
    """Another candidate for the same change (e.g. another cheaper model), with its figures."""

    model: str
    saving_usd: Decimal
    monthly_usd: Decimal
    share_pct: Decimal | None


@dataclass(frozen=True)
class Realised:
    """An accepted recommendation's outcome: the scope's cost per request before and after."""

    accepted_at: datetime
    before_requests: int
    before_cost_usd: Decimal
    before_cost_per_request: Decimal | None
    after_requests: int
    after_cost_usd: Decimal
    after_cost_per_request: Decimal | None
    monthly_usd: Decimal | None  # (before - after) per request x the after period's requests


@dataclass
class Recommendation:
    """One row: where (scope), what to do (action), how much a month, and why (evidence)."""

    rec_id: str
    kind: str
    scope: dict[str, str]
    action: str
    saving_usd: Decimal  # over the period
    monthly_usd: Decimal
    scope_cost_usd: Decimal
    share_pct: Decimal | None
    evidence: dict[str, Any]
    explore: str
    caveats: list[str]
    alternatives: list[Alternative] = field(default_factory=list)
    state: str = "open"
    decided_by: str = ""
    reason: str = ""
    decided_at: datetime | None = None
    realised: Realised | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
