"""The digest's "top saving opportunities": recommendations of the digest's period, never a
dismissed one (the decision log is read at each digest)."""

from __future__ import annotations

from decimal import Decimal

from spendstream.advice import store
from spendstream.advice.recommend import build
from spendstream.insights.base import Context
from spendstream.notifications.text import inert

DAY_S = 86_400


def digest_advice(context: Context) -> list[tuple[Decimal, str]]:
    """(saving over the period in USD, text) of every open or accepted recommendation with a
    saving, largest first; text from events is made inert."""
    window = context.window
    days = max(1, round((window.until - window.since).total_seconds() / DAY_S))
    dismissed = {
        rec_id
        for rec_id, decision in store.current(context.reader).items()
        if decision.state == "dismissed"
    }
    found = [
        (rec.saving_usd, f"{inert(rec.action)} ({rec.kind}, {rec.rec_id})")
        for rec in build(context, days)
        if rec.rec_id not in dismissed and rec.saving_usd > 0
    ]
    found.sort(key=lambda item: (-item[0], item[1]))
    return found
