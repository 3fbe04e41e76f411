"""Admission: answer "may this call go ahead?" in-process, from a local view of the decisions
topic plus the calls this process recorded that the ledger is not yet known to hold.

Model (see docs/guardrails.md):

- ``used`` comes from the worker's decision (exact: the deduplicated ledger at ``as_of``);
- this process adds its own calls that decision does not include: every call it recorded,
  minus those whose Kafka offset the decision's completeness point (``stored``) has passed
  (:mod:`.own_usage`); so a lagging worker never makes a process forget its own spend;
- a call is denied when ``used + local + this call > limit`` for any applicable ``block``
  quota (this call: ``estimated_tokens`` for token quotas, 1 for request quotas, its
  ``estimated_units`` of the unit (variants included) for a usage-unit quota, 0 for USD:
  a USD quota is crossed by at most one call per process);
- a ``throttle`` quota over its limit does not deny every call: per key, each call attempted
  adds its ``throttle`` fraction to a credit, and a call goes ahead (``throttled=True``) when
  the credit reaches one, which spends it; so at the usual pace ``throttle`` of the usual rate
  gets through, spread evenly (0.1: every tenth call);
- once ``resets_at`` has passed, the key starts the new period at zero without waiting;
- when nothing was heard for ``stale_after_s`` (no snapshot: worker or broker down), each quota
  answers by its ``when_stale``: ``closed`` denies; ``open`` does not deny for want of news, but
  the last decision heard plus this process's own usage still apply (a process keeps stopping
  itself at the limit while the broker is away).

Threads: the feed thread and ``record()`` write under a lock; ``admit()`` takes no lock and does
no I/O: it reads dicts whose values are replaced whole, never mutated.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import ContextDecorator
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from spendstream.decisions import (
    NO_QUOTA,
    Decision,
    DecisionsMessage,
    QuotaDecision,
    QuotaExceeded,
    QuotaSpec,
    counts_unit,
    decision_key,
    group_key,
    unit_scale,
)
from spendstream.events import UsageEvent
from spendstream.matching import values_match
from spendstream.producers.own_usage import OwnUsage, Where
from spendstream.producers.runs import event_quota_values

CostOf = Callable[[UsageEvent], Decimal]
STALE_OPEN = (
    "allowed by the last decision heard and this process's own usage; the view is stale and "
    "the quota is when_stale = open"
)
_MAX_PLANS = 10_000


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    scope: dict[str, tuple[str, ...]]
    group_by: tuple[str, ...]
    unit: str
    scale: int
    limit: int
    block: bool
    closed_when_stale: bool
    throttle: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One key's decision in integer units, plus this process's usage counted in it."""

    used: int
    limit: int
    over: bool
    as_of: float
    resets_at: float
    override_until: float
    base: int
    reason: str


def _scaled(value: Decimal, scale: int) -> int:
    return int(value * scale)


def _unit_amount(units: Mapping[str, Decimal | int] | None, unit: str, scale: int) -> int:
    """The scaled quantity of ``unit`` (and its variants) in an event's or a call's units."""
    if not units:
        return 0
    return sum(_scaled(Decimal(q), scale) for n, q in units.items() if counts_unit(unit, n))


def _entry(d: QuotaDecision, base: int) -> Entry:
    scale = unit_scale(d.unit)
    return Entry(
        used=_scaled(d.used, scale),
        limit=_scaled(d.limit, scale),
        over=d.over,
        as_of=d.as_of.timestamp(),
        resets_at=d.resets_at.timestamp(),
        override_until=d.override_until.timestamp() if d.override_until else 0.0,
        base=base,
        reason=d.reason,
    )


def _spec(s: QuotaSpec) -> Spec:
    scale = unit_scale(s.unit)
    return Spec(
        s.name,
        dict(s.scope),
        tuple(s.group_by),
        s.unit,
        scale,
        _scaled(s.limit, scale),
        s.action == "block",
        s.when_stale == "closed",
        s.throttle,
    )


class AdmissionView:
    """The decisions this process knows and the usage it recorded (see the module docstring)."""

    def __init__(
        self, stale_after_s: float, overlap_s: float = 1.0, cost_of: CostOf | None = None
    ) -> None:
        self.stale_after_s = stale_after_s
        self.overlap_s = overlap_s
        self.cost_of = cost_of
        self.specs: tuple[Spec, ...] = ()
        self.entries: dict[str, Entry] = {}
        self.own = OwnUsage()
        self.local = self.own.keys  # read by admit() without the lock
        self.plans: dict[tuple[object, ...], tuple[tuple[Spec, str], ...]] = {}
        self.heard = 0.0  # published_at (UNIX time) of the newest message applied
        self.lock = threading.Lock()
        # Per throttled key, the share of a call earned so far (see the module docstring).
        self.credits: dict[str, Decimal] = {}
        self.credit_lock = threading.Lock()

    # -- writers (feed thread, record path) ----------------------------------------------------
    def apply(self, message: DecisionsMessage) -> None:
        with self.lock:
            if message.kind == "snapshot":
                self.specs = tuple(_spec(s) for s in message.specs)
                self.plans = {}
            stored: dict[Where, int] | None = None
            if message.stored is not None:
                stored = {
                    (s.topic, partition): offset
                    for s in message.stored
                    for partition, offset in s.offsets.items()
                }
            for d in message.decisions:
                dkey = decision_key(d.quota, d.key)
                current = self.entries.get(dkey)
                as_of = d.as_of.timestamp()
                if current is not None and current.as_of >= as_of:
                    continue  # an older reading (another worker, a replay) never wins
                local = self.local.get(dkey)
                if local is None:
                    base = 0
                elif stored is None:  # a worker without completeness points: trust the clock
                    base = local.total_before(as_of - self.overlap_s)
                else:
                    base = local.cover(stored)
                self.entries[dkey] = _entry(d, base)
                if not d.over:  # a throttled key back under its limit starts afresh next time
                    self.credits.pop(dkey, None)
            self.heard = max(self.heard, message.published_at.timestamp())

    def delivered(self, payloads: Iterable[bytes], topic: str, partition: int, offset: int) -> None:
        """The broker stored these recorded events at ``offset`` (called by the sender)."""
        with self.lock:
            for dkey in self.own.delivered(payloads, (topic, partition), offset):
                entry = self.entries.get(dkey)
                if entry is not None:  # already in its used: stop counting it locally now
                    self.entries[dkey] = dataclasses.replace(entry, base=self.local[dkey].covered)

    def note(self, event: UsageEvent, payload: bytes | None = None) -> None:
        """Count a recorded event towards the keys it falls in (called by ``record()``);
        ``payload``, its bytes as sent, lets :meth:`delivered` learn its offset."""
        plan = self.plan(event.provider, event.model, event_quota_values(event))
        if not plan:
            return
        second = int(time.time())
        cost: Decimal | None = None
        shares: list[tuple[str, int]] = []
        with self.lock:
            for spec, dkey in plan:
                if spec.unit == "usd":
                    if cost is None:
                        cost = self._cost(event)
                    units = _scaled(cost, spec.scale)
                elif spec.unit == "tokens":
                    units = event.input_tokens + event.output_tokens
                elif spec.unit == "requests":
                    units = event.request_count
                elif spec.unit == "steps":
                    units = 1
                else:
                    units = _unit_amount(event.units, spec.unit, spec.scale)
                shares.append((dkey, units))
            self.own.note(second, tuple(shares), payload)

    def _cost(self, event: UsageEvent) -> Decimal:
        """The estimated cost of a recorded call; 0 when it cannot be priced here (record()
        must never fail because of admission; the ledger's exact cost arrives within D)."""
        try:
            return self.cost_of(event) if self.cost_of else Decimal(0)
        except Exception:
            return Decimal(0)

    def plan(
        self, provider: str | None, model: str | None, tags: Mapping[str, str]
    ) -> tuple[tuple[Spec, str], ...]:
        """The (quota, key) pairs a call with these tags falls in (cached per tag set)."""
        cache_key = (provider, model, *tags.items())
        found = self.plans.get(cache_key)
        if found is not None:
            return found
        values = dict(tags)
        values["provider"], values["model"] = provider or "", model or ""
        found = tuple(
            (spec, decision_key(spec.name, group_key(spec.group_by, values)))
            for spec in self.specs
            if values_match(spec.scope, values)
        )
        if len(self.plans) >= _MAX_PLANS:
            self.plans = {}
        self.plans[cache_key] = found
        return found

    # -- the call path ---------------------------------------------------------------------------
    def admit(
        self,
        model: str | None,
        estimated_tokens: int,
        tags: Mapping[str, str],
        provider: str | None = None,
        estimated_units: Mapping[str, Decimal | int] | None = None,
    ) -> Decision:
        """Allowed unless an applicable ``block`` quota would go over (module docstring)."""
        now = time.time()
        plan = self.plan(provider, model, tags)
        if not plan:
            if not self.specs and now - self.heard > self.stale_after_s:
                return Decision(True, "no quota view yet (allowed)", stale=True)
            return NO_QUOTA
        stale = now - self.heard > self.stale_after_s
        tightest: tuple[Spec, str, int, int, Entry | None] | None = None
        throttled: list[tuple[Spec, str, int, int, Entry | None]] = []
        for spec, dkey in plan:
            if stale and spec.closed_when_stale:
                return self._stale(spec, dkey, now)
            entry = self.entries.get(dkey)
            local = self.local.get(dkey)
            if entry is None or now >= entry.resets_at:
                used, limit = 0, spec.limit
                if entry is not None and entry.override_until > now:
                    limit = entry.limit
            else:
                used, limit = entry.used, entry.limit
            if local is not None:
                used += local.total - (entry.base if entry is not None else 0)
            if spec.unit == "tokens":
                this = estimated_tokens
            elif spec.unit in ("requests", "steps", "usd"):
                this = int(spec.unit != "usd")  # the call about to be made: one request, one step
            else:
                this = _unit_amount(estimated_units, spec.unit, spec.scale)
            left = limit - used
            if spec.block and (left < this or left <= 0):
                if spec.throttle is None:
                    return self._deny(spec, dkey, used, limit, entry, now, stale)
                throttled.append((spec, dkey, used, limit, entry))
                continue
            if tightest is None or left * tightest[0].limit < tightest[2] * spec.limit:
                tightest = (spec, dkey, left, limit, entry)
        if throttled:
            return self._throttle(throttled, now, stale)
        assert tightest is not None  # the plan is not empty
        spec, dkey, left, limit, entry = tightest
        return Decision(
            allowed=True,
            reason=STALE_OPEN if stale else "within quota",
            quota=spec.name,
            key=dkey[len(spec.name) + 1 :],
            unit=spec.unit,
            remaining=Decimal(max(left, 0)) / spec.scale,
            limit=Decimal(limit) / spec.scale,
            as_of=entry.as_of if entry else 0.0,
            stale=stale,
        )

    def _deny(
        self,
        spec: Spec,
        dkey: str,
        used: int,
        limit: int,
        entry: Entry | None,
        now: float,
        stale: bool,
    ) -> Decision:
        key = dkey[len(spec.name) + 1 :]
        if entry is not None and entry.over and now < entry.resets_at:
            reason = entry.reason
        else:
            reason = (
                f"quota {spec.name}{' for ' + key if key else ''}: "
                f"{Decimal(used) / spec.scale} of {Decimal(limit) / spec.scale} {spec.unit} used "
                "(including this process's calls not yet in the ledger)"
            )
        retry = max(entry.resets_at - now, 0.0) if entry is not None else self.stale_after_s
        return Decision(
            allowed=False,
            reason=reason,
            quota=spec.name,
            key=key,
            unit=spec.unit,
            remaining=Decimal(max(limit - used, 0)) / spec.scale,
            limit=Decimal(limit) / spec.scale,
            retry_after=retry,
            as_of=entry.as_of if entry is not None else 0.0,
            stale=stale,
        )

    def _throttle(
        self, over: list[tuple[Spec, str, int, int, Entry | None]], now: float, stale: bool
    ) -> Decision:
        """Every throttle quota in ``over`` earns its share of this call; the call goes ahead
        only when each has earned a whole one (then each spends it)."""
        with self.credit_lock:
            earned = []
            for spec, dkey, *_ in over:
                assert spec.throttle is not None
                earned.append(self.credits.get(dkey, Decimal(0)) + spec.throttle)
            allowed = all(credit >= 1 for credit in earned)
            for (_, dkey, *_), credit in zip(over, earned, strict=True):
                self.credits[dkey] = credit - 1 if allowed else credit
        spec, dkey, used, limit, entry = over[0]
        decision = self._deny(spec, dkey, used, limit, entry, now, stale)
        share = f"{((spec.throttle or Decimal(0)) * 100).normalize():f} %"
        decision.throttled = True
        decision.retry_after = 0.0
        if allowed:
            decision.allowed = True
            decision.reason = f"throttled to {share} of calls, this one let through: " + (
                decision.reason
            )
        else:
            decision.reason = f"throttled to {share} of calls, this one held back: " + (
                decision.reason
            )
        return decision

    def _stale(self, spec: Spec, dkey: str, now: float) -> Decision:
        age = now - self.heard if self.heard else float("inf")
        return Decision(
            allowed=False,
            reason=f"quota {spec.name}: no decision heard for {age:.0f}s (bound "
            f"{self.stale_after_s:g}s) and it is when_stale = closed",
            quota=spec.name,
            key=dkey[len(spec.name) + 1 :],
            unit=spec.unit,
            retry_after=1.0,
            stale=True,
        )


class Guard(ContextDecorator):
    """Admission as a context manager or decorator (see ``Recorder.guard``): ``decide`` is
    asked on every entry; a denial raises :class:`~spendstream.decisions.QuotaExceeded`."""

    def __init__(self, decide: Callable[[], Decision]) -> None:
        self.decide = decide

    def __enter__(self) -> Decision:
        decision = self.decide()
        if not decision.allowed:
            raise QuotaExceeded(decision)
        return decision

    def __exit__(self, *exc_info: object) -> Literal[False]:
        return False
