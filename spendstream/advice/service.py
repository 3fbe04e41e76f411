"""The recommendations a caller sees, with their state, and realised savings of accepted ones.

States come from the decision log (:mod:`spendstream.advice.store`): dismissed recommendations
are left out (``include_dismissed`` shows them, e.g. to reopen one); accepted ones stay, with
:class:`~spendstream.advice.model.Realised` figures on the scope the change applies to (its
team and feature, or its model when it names no feature; never the model of a model move)::

    before = cost / requests over [accepted_at - days, accepted_at)
    after  = cost / requests over [accepted_at, until)
    realised monthly_usd = (before - after) x after requests x 30 days / after period's days

Per-request figures and the monthly figure are rounded half-even to 1e-18.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from spendstream.advice import store
from spendstream.advice.model import ATTO, MONTH_DAYS, Realised, Recommendation, explore_link
from spendstream.advice.recommend import build
from spendstream.config import InsightsSettings
from spendstream.insights.base import Context, Window, dec, num
from spendstream.pricing import Pricer
from spendstream.sinks.access import Reader

SCOPE_SQL = (
    "SELECT sum(request_count) AS requests, sum(cost_total) AS cost_usd "
    "FROM ledger FINAL WHERE {where}"
)
# Kinds that change nothing a per-request cost can show.
NO_REALISED = ("unpriced", "quota_idle", "quota_binding")


@dataclass(frozen=True)
class Advisor:
    """Recommendations over a reader, for the caller's teams (``team_sql``)."""

    reader: Reader
    pricer: Pricer
    settings: InsightsSettings

    def recommendations(
        self,
        until: datetime,
        days: int,
        scope: tuple[tuple[str, str], ...] = (),
        team_sql: str = "1",
        team_params: dict[str, object] | None = None,
        include_dismissed: bool = False,
        teams: frozenset[str] | None = None,
    ) -> list[Recommendation]:
        """Open and accepted recommendations over ``[until - days, until)``, largest monthly
        saving first; accepted ones whose saving is gone from the traffic (the change took
        effect) come from the decision log, after the rest. ``teams``: the caller's teams
        (None: all), which a logged recommendation's team must be one of."""
        window = Window(until - timedelta(days=days), until, scope, team_sql, team_params or {})
        found = build(Context(self.reader, self.pricer, self.settings, window), days)
        decisions = store.current(self.reader)
        shown = []
        for rec in found:
            decision = decisions.get(rec.rec_id)
            if decision is not None:
                rec.state, rec.reason = decision.state, decision.reason
                rec.decided_by, rec.decided_at = decision.decided_by, decision.decided_at
            if rec.state == "dismissed" and not include_dismissed:
                continue
            if rec.state == "accepted" and rec.decided_at and rec.kind not in NO_REALISED:
                rec.realised = self.realised(rec, rec.decided_at, until, days, window)
            shown.append(rec)
        listed = {rec.rec_id for rec in found}
        for decision in decisions.values():
            if decision.rec_id in listed or decision.state != "accepted":
                continue
            if teams is not None and decision.scope.get("team") not in teams:
                continue
            if any(decision.scope.get(key) != value for key, value in scope):
                continue
            rec = from_log(decision, window)
            if rec.kind not in NO_REALISED:
                rec.realised = self.realised(rec, decision.decided_at, until, days, window)
            shown.append(rec)
        return shown

    def realised(
        self, rec: Recommendation, accepted: datetime, until: datetime, days: int, window: Window
    ) -> Realised:
        scope = realised_scope(rec)
        parts = []
        for since, end in ((accepted - timedelta(days=days), accepted), (accepted, until)):
            if end <= since:
                parts.append((0, Decimal(0)))
                continue
            part = Window(since, end, scope, window.team_sql, window.team_params)
            row = Context(self.reader, self.pricer, self.settings, part).rows(SCOPE_SQL)[0]
            parts.append((num(row["requests"]), dec(row["cost_usd"])))
        (before_n, before_cost), (after_n, after_cost) = parts
        before, after = per_request(before_cost, before_n), per_request(after_cost, after_n)
        saved = None
        if before is not None and after is not None and until > accepted:
            with localcontext() as context:
                context.prec = 80
                seconds = Decimal((until - accepted).total_seconds())
                month = Decimal(MONTH_DAYS * 86_400)
                saved = ((before - after) * after_n * month / seconds).quantize(
                    ATTO, ROUND_HALF_EVEN
                )
        return Realised(accepted, before_n, before_cost, before, after_n, after_cost, after, saved)


def from_log(decision: store.Decision, window: Window) -> Recommendation:
    """An accepted recommendation no longer found in the traffic, as it was when accepted."""
    return Recommendation(
        rec_id=decision.rec_id,
        kind=decision.kind,
        scope=decision.scope,
        action=decision.action,
        saving_usd=Decimal(0),
        monthly_usd=Decimal(0),
        scope_cost_usd=Decimal(0),
        share_pct=None,
        evidence={"projected_monthly_usd_when_accepted": decision.monthly_usd},
        explore=explore_link(decision.scope, window.since, window.until),
        caveats=["no longer found in the period's traffic: the change is in effect"],
        state=decision.state,
        decided_by=decision.decided_by,
        reason=decision.reason,
        decided_at=decision.decided_at,
    )


def realised_scope(rec: Recommendation) -> tuple[tuple[str, str], ...]:
    """Where the change shows: team and feature (model only when no feature is named)."""
    keys = ("team", "feature") if "feature" in rec.scope else ("team", "provider", "model")
    return tuple((key, rec.scope[key]) for key in keys if key in rec.scope)


def per_request(cost: Decimal, requests: int) -> Decimal | None:
    if not requests:
        return None
    with localcontext() as context:
        context.prec = 80
        return (cost / requests).quantize(ATTO, ROUND_HALF_EVEN)
