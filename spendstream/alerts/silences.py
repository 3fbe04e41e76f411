"""Silences: a budget is silenced until an instant; alerts then record ``silenced``, send nothing.

The CLI writes a silence directly when no worker holds the chDB directory, else it POSTs a
:class:`SilenceRequest` to the worker's ``/alerts/silences`` page; both end in
:func:`apply_silence`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from spendstream.alerts.config import Alerting
from spendstream.config.models import SpelledDuration
from spendstream.moments import shifted
from spendstream.notifications.outbox import Outbox
from spendstream.notifications.records import Silence
from spendstream.sinks.versions import next_version


class SilenceRequest(BaseModel):
    """``silence`` a budget for ``duration`` (with a reason), or ``unsilence`` it now."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["silence", "unsilence"] = "silence"
    budget: str
    duration: SpelledDuration = Field(default="1h", validate_default=True)
    reason: str = ""
    by: str = ""


def apply_silence(
    store: Outbox, alerting: Alerting, request: SilenceRequest, now: datetime
) -> Silence:
    """Record the silence (an unsilence is a silence that ended now); KeyError: no such budget."""
    alerting.budget(request.budget)
    return record_silence(store, request, now)


def record_silence(store: Outbox, request: SilenceRequest, now: datetime) -> Silence:
    """Record the silence of ``request.budget``, any name of the outbox's rows (a budget, an
    anomaly rule: ``spendstream.anomalies.silences``), checked by the caller."""
    # ValueError (the caller's 400) when the silence would end past the supported range.
    until = shifted(now, request.duration) if request.action == "silence" else now
    silence = Silence(
        budget=request.budget,
        until=until,
        reason=request.reason if request.action == "silence" else f"unsilenced: {request.reason}",
        created_by=request.by,
        created_at=now,
        version=next_version(),
    )
    store.put_silence(silence)
    return silence
