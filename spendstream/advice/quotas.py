"""Quota advice: quotas that never bind (``quota_idle``) or bind on most days (``quota_binding``).

Read from the quota tables over the period (no saving: a quota guards spend, it saves none):

- ``quota_binding``: ``block`` or ``warn`` transitions on at least half of the period's days;
- ``quota_idle``: a quota decided during the period, without any such transition, whose keys'
  peak use (``used / limit`` of the newest decision per key) stayed under 50 %.

Quotas span teams (their keys are not bound to one), so a team-scoped caller gets none.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from spendstream.insights.base import dec, num, pct

if TYPE_CHECKING:
    from spendstream.advice.recommend import Builder

BINDING_SHARE = Decimal("0.5")
IDLE_PEAK_PCT = Decimal(50)
# The newest decision per key (used / limit is taken in Python: a Decimal(38, 18) division
# in SQL overflows); block or warn transitions per quota.
DECIDED_SQL = (
    "SELECT quota, used, limit FROM quota_decisions FINAL "
    "WHERE as_of >= {since:DateTime64(3)} AND as_of < {until:DateTime64(3)} AND limit > 0"
)
BLOCKS_SQL = (
    "SELECT quota, uniqExact(toDate(at)) AS block_days, count() AS blocks "
    "FROM quota_transitions FINAL WHERE kind IN ('block', 'warn') "
    "AND at >= {since:DateTime64(3)} AND at < {until:DateTime64(3)} GROUP BY quota"
)


def quotas(b: Builder) -> None:
    window = b.window
    if window.team_sql != "1":
        return
    params = {"since": window.since, "until": window.until}
    reader = b.context.reader
    blocked = {row["quota"]: row for row in reader.query(BLOCKS_SQL, params).records()}
    peaks: dict[str, list[Decimal]] = {}
    for row in reader.query(DECIDED_SQL, params).records():
        share = pct(dec(row["used"]), dec(row["limit"]))
        peaks.setdefault(row["quota"], []).append(share or Decimal(0))
    for quota, shares in sorted(peaks.items()):
        found = blocked.get(quota, {})
        days, peak = num(found.get("block_days")), max(shares)
        figures = {
            "keys": len(shares),
            "peak_use_pct": peak,
            "block_days": days,
            "blocks": num(found.get("blocks")),
        }
        if days and Decimal(days) >= BINDING_SHARE * b.days:
            b.add(
                "quota_binding",
                [],
                f"Quota {quota} blocked on {days} of {b.days} days: raise its limit, or move "
                "the traffic it throttles to a cheaper model.",
                Decimal(0),
                {**figures, "block_days_pct": pct(days, b.days)},
                ["a quota that always binds throttles work every day; no saving is claimed"],
                quota=quota,
            )
        elif not days and peak < IDLE_PEAK_PCT:
            b.add(
                "quota_idle",
                [],
                f"Quota {quota} never came near its limit (peak use {peak}%): lower the "
                "limit so it guards, or remove it.",
                Decimal(0),
                figures,
                ["a limit far above use protects nothing; no saving is claimed"],
                quota=quota,
            )
