"""Quota decisions: ledger usage → allowed/blocked per quota key, and block/unblock transitions.

Blocking (ClickHouse reads); the worker runs it on the quota thread. A decision's ``as_of`` is
taken *before* the ledger is read, so every event whose ledger insert finished before ``as_of``
is in ``used``; stored with ``as_of`` as its row version, the newest reading wins whichever
worker wrote it.

Transitions are recorded and notified once each: a block's id is a hash of (quota, key, period,
"block", epoch) where the epoch names the override or reset in effect; its unblock uses the
same period and epoch. A transition id already stored is neither stored nor sent again, and its
inserts carry a deduplication token, so two workers seeing the same crossing record one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import cast

from spendstream.decisions import QuotaDecision, key_text
from spendstream.logs import get_logger
from spendstream.matching import scope_text
from spendstream.money import format_usd
from spendstream.notifications.kinds import QuotaAction, QuotaTransition
from spendstream.notifications.outbox import Outbox
from spendstream.notifications.text import inert
from spendstream.periods import format_time, utc_now
from spendstream.quotas.config import QuotaConfig, Quotas
from spendstream.quotas.store import Override, QuotaStore, Transition, transition_id
from spendstream.sinks.versions import next_version

log = get_logger(__name__)
Touched = Mapping[str, set[str]]
# (crossing over the limit, coming back under) per quota action
TRANSITIONS = {
    "block": ("block", "unblock"),
    "warn": ("warn", "clear"),
    "throttle": ("throttle", "unthrottle"),
}


def amount_text(unit: str, value: Decimal) -> str:
    return format_usd(value) if unit == "usd" else f"{value.normalize():f} {unit}"


def judge(
    quota: QuotaConfig,
    key: str,
    used: Decimal,
    bounds: tuple[datetime, datetime],
    as_of: datetime,
    overrides: Mapping[tuple[str, str, str], Override],
) -> QuotaDecision:
    """The decision for one key given its period usage and the overrides in effect."""
    start, end = bounds
    limit, baseline, epoch, until, notes = quota.amount, Decimal(0), "0", None, []
    override = overrides.get((quota.name, key, "limit"))
    if override is not None and override.limit is not None:
        limit, epoch, until = override.limit, override.override_id[:12], override.until
        notes.append(
            f"override to {amount_text(quota.unit, limit)} by {override.created_by or '?'} "
            f"until {format_time(override.until)} ({override.reason or 'no reason given'})"
        )
    reset = overrides.get((quota.name, key, "reset"))
    if reset is not None and reset.until == end:
        baseline = reset.baseline
        epoch += "+" + reset.override_id[:12]
        notes.append(f"reset by {reset.created_by or '?'} at {format_time(reset.created_at)}")
    counted = max(used - baseline, Decimal(0))
    over = counted >= limit
    allowed = not (over and quota.action == "block")
    usage = f"{amount_text(quota.unit, counted)} of {amount_text(quota.unit, limit)}"
    where = f"quota {quota.name}" + (f" for {key_text(key, quota.group_by)}" if key else "")
    if over:
        verb = {
            "block": "blocked",
            "warn": "over (warn only)",
            "throttle": f"throttled to {(quota.throttle_fraction * 100).normalize():f} % of calls",
        }[quota.action]
        reason = f"{where} {verb}: {usage} used this {quota.label(start)}"
    else:
        reason = f"{where}: {usage} used"
    if notes:
        reason += "; " + "; ".join(notes)
    return QuotaDecision(
        quota=quota.name,
        key=key,
        unit=quota.unit,
        allowed=allowed,
        over=over,
        used=counted,
        limit=limit,
        remaining=max(limit - counted, Decimal(0)),
        period_start=start,
        resets_at=end,
        as_of=as_of,
        reason=reason,
        epoch=epoch,
        override_until=until,
        throttled=over and quota.action == "throttle",
    )


class QuotaEngine:
    """Decides quota keys from the ledger and keeps the latest decision per key in memory."""

    def __init__(
        self,
        quotas: Quotas,
        store: QuotaStore,
        outbox: Outbox | None,
        overrides_ttl_s: float = 5.0,
    ) -> None:
        """``overrides_ttl_s``: how long the overrides read from ClickHouse are reused by
        per-batch decisions (full passes and :meth:`forget_overrides` re-read them)."""
        self.quotas = quotas
        self.store = store
        self.outbox = outbox
        self.overrides_ttl_s = overrides_ttl_s
        self.state: dict[tuple[str, str], QuotaDecision] = {}
        self.lock = threading.Lock()  # guards state (the snapshot reads it from another thread)
        self._overrides: dict[tuple[str, str, str], Override] = {}
        self._overrides_read = 0.0

    def forget_overrides(self) -> None:
        self._overrides_read = 0.0

    def overrides(self, now: datetime, fresh: bool) -> dict[tuple[str, str, str], Override]:
        clock = time.monotonic()
        if fresh or clock - self._overrides_read > self.overrides_ttl_s:
            self._overrides = self.store.active_overrides(now)
            self._overrides_read = clock
        return {k: o for k, o in self._overrides.items() if o.until > now}

    def load(self) -> None:
        """Start from the stored decisions (a restarted worker answers as before the crash)."""
        loaded = self.store.load_decisions()
        known = {q.name for q in self.quotas.quotas}
        with self.lock:
            self.state = {(d.quota, d.key): d for d in loaded if d.quota in known}

    def decisions(self) -> list[QuotaDecision]:
        with self.lock:
            return list(self.state.values())

    def decide(
        self, touched: Touched | None = None, now: datetime | None = None
    ) -> list[QuotaDecision]:
        """Decide the ``touched`` keys per quota (None: every key known or with usage).

        Nothing is stored: publish the result, then :meth:`commit` it (publishing first keeps
        the ClickHouse writes out of the reaction time)."""
        now = now or utc_now()
        overrides = self.overrides(now, fresh=touched is None)
        decided: list[QuotaDecision] = []
        for quota in self.quotas.quotas:
            wanted: set[str] | None = None
            if touched is not None:
                wanted = touched.get(quota.name)
                if not wanted:
                    continue
            bounds = quota.bounds(now)
            as_of = datetime.now(UTC)
            usage = self.store.usage(quota, *bounds, keys=wanted)
            if touched is None:
                with self.lock:
                    known = [k for (name, k) in self.state if name == quota.name]
                extra = {k for (name, k, _) in overrides if name == quota.name}
                for key in {*known, *extra, *([""] if not quota.group_by else [])}:
                    usage.setdefault(key, Decimal(0))
            decided += [
                judge(quota, key, used, bounds, as_of, overrides) for key, used in usage.items()
            ]
        return decided

    def commit(self, decided: list[QuotaDecision]) -> None:
        """Store decisions, record their transitions, and make them the current state."""
        self.store.put_decisions(decided)
        self.record_transitions(decided)
        with self.lock:
            for decision in decided:
                current = self.state.get((decision.quota, decision.key))
                if current is None or current.as_of <= decision.as_of:
                    self.state[(decision.quota, decision.key)] = decision

    def prune(self) -> None:
        """Forget keys at zero with nothing in effect (e.g. last period's users), so the full
        pass and the snapshot stay the size of the current period's keys. Their last decision
        (zero, allowed) has been published; views treat an ended period as zero anyway."""
        with self.lock:
            self.state = {k: d for k, d in self.state.items() if d.used or d.over or d.epoch != "0"}

    def record_transitions(self, decided: list[QuotaDecision]) -> None:
        """Record (and notify) the block/unblock transitions ``decided`` makes, judged against
        the last *stored* transition of each key, so any worker reaches the same verdict."""
        candidates = []
        for d in decided:
            with self.lock:
                prev = self.state.get((d.quota, d.key))
            if d.over or prev is None or prev.over:
                candidates.append(d)
        if not candidates:
            return
        last = self.store.last_transitions({(d.quota, d.key) for d in candidates})
        for d in candidates:
            quota = self.quotas.quota(d.quota)
            on, off = TRANSITIONS[quota.action]
            previous = last.get((d.quota, d.key))
            blocked = previous is not None and previous.kind == on
            if d.over and not (
                blocked
                and previous is not None
                and previous.period_start == d.period_start
                and previous.epoch == d.epoch
            ):
                kind, start = on, d.period_start
            elif not d.over and blocked and previous is not None:
                kind, start = off, previous.period_start
            else:
                continue
            after = previous.transition_id if previous is not None else ""
            tid = transition_id(d.quota, d.key, start, kind, f"{d.epoch}|{after}")
            transition = Transition(
                tid,
                d.quota,
                d.key,
                kind,
                d.used,
                d.limit,
                d.unit,
                start,
                d.epoch,
                d.as_of,
                d.reason,
                next_version(),
            )
            if self.outbox is not None and quota.channels:
                self.notify(quota, transition, d)
            self.store.put_transition(transition)
            log.info("quota transition", quota=d.quota, key=d.key, kind=kind, used=str(d.used))

    def notify(self, quota: QuotaConfig, t: Transition, d: QuotaDecision) -> None:
        """Put the transition in the outbox (the notification dispatcher delivers it)."""
        assert self.outbox is not None
        now = utc_now()
        who = f" for {inert(key_text(t.key, quota.group_by))}" if t.key else ""
        verbs = {
            "block": "blocked",
            "unblock": "unblocked",
            "warn": "over",
            "clear": "back under",
            "throttle": "throttled",
            "unthrottle": "no longer throttled",
        }
        headline = f"quota {quota.name}{who} {verbs[t.kind]}"
        body = "\n".join(
            [
                f"**{headline}**",
                f"Quota: {quota.name}" + (f" (owner: {inert(quota.owner)})" if quota.owner else ""),
                f"Scope: {inert(scope_text(quota.scope_filters))}",
                f"Period: {quota.label(t.period_start)}, resets {format_time(d.resets_at)}",
                f"Used: {amount_text(t.unit, t.used)} of {amount_text(t.unit, t.limit)}",
                "Admission denies matching calls until the period resets or an override lifts it."
                if t.kind == "block"
                else f"Decision: {inert(d.reason)}",
            ]
        )
        record = QuotaTransition(
            notification_id=t.transition_id,
            subject=quota.name,
            channels=tuple(quota.channels),
            period_start=t.period_start,
            period_end=d.resets_at,
            title=f"[spendstream] {headline}",
            body=body,
            action=cast(QuotaAction, t.kind),
            key=t.key,
            owner=quota.owner,
            scope=scope_text(quota.scope_filters),
            unit=t.unit,
            used=t.used,
            limit=t.limit,
        )
        self.outbox.enqueue(record, now)
