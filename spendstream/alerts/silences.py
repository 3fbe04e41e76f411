"""Silences: a notification subject is silenced until an instant; its notifications then record
``silenced`` and send nothing (the dispatcher checks every delivery's subject).

A subject is any name the outbox's rows carry (docs/notifications.md): a budget, a quota (its
block/unblock notices), or a subject of a notification already stored (``run/<agent>/<run_id>``,
``reconcile/<provider>/<account>/<model>``, ``digest``). :class:`Subjects` judges a name.

The CLI writes a silence directly when no worker holds the chDB directory, else it POSTs a
:class:`SilenceRequest` to the worker's ``/alerts/silences`` page; both end in
:func:`apply_silence`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from spendstream.alerts.config import Alerting
from spendstream.config.models import SpelledDuration
from spendstream.moments import shifted
from spendstream.notifications.outbox import Outbox
from spendstream.notifications.records import Silence
from spendstream.sinks.versions import next_version


@dataclass(frozen=True)
class Subjects:
    """The configured subjects a silence may name (``budgets``, ``quotas``); any subject of a
    stored notification may be silenced too."""

    budgets: tuple[str, ...] = ()
    quotas: tuple[str, ...] = ()

    @staticmethod
    def of(alerting: Alerting, quotas: Sequence[str] = ()) -> Subjects:
        return Subjects(tuple(b.name for b in alerting.budgets), tuple(quotas))

    def check(self, store: Outbox, name: str) -> None:
        """KeyError naming what exists when ``name`` is no subject of any kind."""
        if name in self.budgets or name in self.quotas or store.has_subject(name):
            return
        raise KeyError(
            f"no budget named {name[:80]!r}, nor a quota or a notification's subject (budgets: "
            f"{', '.join(self.budgets) or 'none'}; quotas: {', '.join(self.quotas) or 'none'}; "
            "runs, reconciliation cells and the digest by the subject their notifications "
            "show in `spendstream alerts list`)"
        )


class SilenceRequest(BaseModel):
    """``silence`` a subject for ``duration`` (with a reason), or ``unsilence`` it now."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["silence", "unsilence"] = "silence"
    budget: str
    duration: SpelledDuration = Field(default="1h", validate_default=True)
    reason: str = ""
    by: str = ""


def apply_silence(
    store: Outbox, subjects: Subjects | Alerting, request: SilenceRequest, now: datetime
) -> Silence:
    """Record the silence (an unsilence is a silence that ended now); KeyError: no such subject.
    ``subjects`` as an :class:`Alerting`: its budgets (no quotas)."""
    known = Subjects.of(subjects) if isinstance(subjects, Alerting) else subjects
    known.check(store, request.budget)
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
