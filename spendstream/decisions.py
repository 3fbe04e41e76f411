"""Quota decisions on the wire: what the worker publishes and what admission answers.

The worker publishes :class:`DecisionsMessage` values (JSON) to the decisions topic, all on
partition 0 so their order is total:

- ``kind = "update"``: the decisions a batch (or a pass) changed;
- ``kind = "snapshot"``: every quota spec and every current decision, published by the
  evaluating worker every ``guardrails.snapshot_every_s``. It doubles as a heartbeat: a reader
  whose last message is older than its staleness bound treats its view as stale.

Per key, a reader keeps the decision with the highest ``as_of`` (several workers may publish;
an older decision never replaces a newer one). ``as_of`` is the instant the worker read the
deduplicated ledger: every event inserted before it is counted in ``used``.

``as_of`` says nothing about events still in the usage topic (a lagging worker reads the ledger
now, but the ledger lacks the last minutes of calls). An update therefore also says how far the
ledger is complete: ``stored`` holds, per usage partition, the highest Kafka offset whose records
were all stored (or dead-lettered) before any of its decisions was read. An SDK process stops
counting one of its own records locally only once that point has passed the record's offset
(see ``producers.own_usage``).

:class:`Decision` is what ``Recorder.admit()`` and ``POST /api/v1/admit`` answer. Pydantic and
the standard library only: the SDK imports this module without the worker side.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

from spendstream.errors import SpendstreamError

# "usd", "tokens", "requests", "steps" (recorded events: with group_by run_id, a run's steps), or
# a usage unit name (events.UNIT_NAME_PATTERN, e.g. "vector_queries"): a unit quota counts that
# unit's quantity, its variants included.
Unit = str
Action = Literal["block", "warn"]
WhenStale = Literal["open", "closed"]
# Money and counts travel as integers of these units (exact, and cheap to compare in admit()).
UNIT_SCALE: dict[str, int] = {"usd": 10**9, "tokens": 1, "requests": 1, "steps": 1}
# Usage unit quantities have at most 9 decimals (events.UNIT_DECIMAL_PLACES): exact at 10**9.
USAGE_UNIT_SCALE = 10**9


def unit_scale(unit: str) -> int:
    """The integer scale of ``unit`` (a usage unit name: :data:`USAGE_UNIT_SCALE`)."""
    return UNIT_SCALE.get(unit, USAGE_UNIT_SCALE)


def counts_unit(unit: str, name: str) -> bool:
    """Whether an event unit ``name`` counts towards a quota on ``unit``: the unit itself or one
    of its dotted variants (``images`` counts ``images.1024x1024.hd``), as budgets count."""
    return name == unit or name.startswith(unit + ".")


def decision_key(quota: str, key: str) -> str:
    """The view's key for one quota key, e.g. ``support-user-daily/user=alice``."""
    return f"{quota}/{key}"


def group_key(group_by: tuple[str, ...], values: dict[str, str] | list[str]) -> str:
    """``user=alice,app=bot`` for ``group_by = ["user", "app"]`` ("" without group_by)."""
    if isinstance(values, dict):
        return ",".join(f"{name}={values.get(name, '')}" for name in group_by)
    return ",".join(f"{name}={value}" for name, value in zip(group_by, values, strict=True))


NO_VALUE = "(none)"


def pairs_text(
    pairs: Iterable[tuple[str, str]], separator: str = ", ", empty: str = NO_VALUE
) -> str:
    """``team=search, app=(none)``: tag pairs as a person reads them, an empty value named
    (``empty=""``: the values as stored, for machines)."""
    return separator.join(f"{name}={value or empty}" for name, value in pairs)


def key_text(key: str, group_by: Sequence[str]) -> str:
    """A quota's group key as a person reads it: ``user=(none)`` for calls without that tag,
    which share one key (``user=`` as stored and as ``--key`` takes it). Values are free text
    (``,`` and ``=`` included), so the key is cut at the names ``group_by`` gives, in order;
    a key that is not of that shape is returned as it is."""
    values, rest = [], key
    for index, name in enumerate(group_by):
        if not rest.startswith(name + "="):
            return key
        rest = rest[len(name) + 1 :]
        if index + 1 < len(group_by):
            end = rest.find("," + group_by[index + 1] + "=")
            if end < 0:
                return key
            values.append(rest[:end])
            rest = rest[end + 1 :]
        else:
            values.append(rest)
    return pairs_text(zip(group_by, values, strict=True), ",") if group_by else key


class Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class QuotaSpec(Wire):
    """A quota as admission needs it: which calls it covers and its configured limit."""

    name: str
    scope: dict[str, tuple[str, ...]]
    group_by: tuple[str, ...] = ()
    unit: Unit
    limit: Decimal
    per: str
    action: Action = "block"
    when_stale: WhenStale = "open"
    # A throttle quota: over the limit, admission lets this share of the calls through
    # (action is "block", so an SDK that predates throttling blocks instead).
    throttle: Decimal | None = None


class QuotaDecision(Wire):
    """The worker's decision for one quota key at ``as_of`` (``used`` after any reset)."""

    quota: str
    key: str
    unit: Unit
    allowed: bool
    over: bool
    used: Decimal
    limit: Decimal
    remaining: Decimal
    period_start: datetime
    resets_at: datetime
    as_of: datetime
    reason: str
    epoch: str = "0"  # the override or reset in effect ("0": none); keys transitions
    override_until: datetime | None = None
    throttled: bool = False  # over a throttle quota: admission lets a share of calls through


class StoredOffsets(Wire):
    """How far the ledger is complete for one topic: ``offsets[partition]`` is the highest
    offset such that every record of that partition at or below it was processed (stored, or
    dead-lettered) before the message's decisions read the ledger."""

    topic: str
    offsets: dict[int, int]


class DecisionsMessage(Wire):
    """``stored``: how far the ledger is complete for this message's decisions; ``()`` when
    the publisher knows nothing new (snapshots re-send older decisions), None from a worker
    that predates it (readers then fall back to ``as_of`` minus their overlap)."""

    kind: Literal["update", "snapshot"]
    published_at: datetime
    publisher: str = ""
    specs: tuple[QuotaSpec, ...] = ()
    decisions: tuple[QuotaDecision, ...] = ()
    stored: tuple[StoredOffsets, ...] | None = None


@dataclass(slots=True)
class Decision:
    """An admission answer. ``quota`` names the quota that decided (the denying one, or the
    tightest when allowed; "" when no quota applies). ``remaining`` is in the quota's ``unit``;
    ``retry_after`` is in seconds (0 when allowed); ``as_of`` is a UNIX time (0: no decision
    from the worker yet, only the configured limit and this process's own usage).
    ``throttled``: a throttle quota is over its limit and admission lets only its
    ``throttle_fraction`` of the calls through; this one was let through when ``allowed``.

    Treat it as read-only (not frozen only because a frozen dataclass is ~3x slower to build,
    and admit() builds one per call)."""

    allowed: bool
    reason: str
    quota: str = ""
    key: str = ""
    unit: str = ""
    remaining: Decimal | None = None
    limit: Decimal | None = None
    retry_after: float = 0.0
    as_of: float = 0.0
    stale: bool = False
    throttled: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "allowed": self.allowed,
            "reason": self.reason,
            "quota": self.quota,
            "key": self.key,
            "unit": self.unit,
            "remaining": None if self.remaining is None else str(self.remaining),
            "limit": None if self.limit is None else str(self.limit),
            "retry_after": self.retry_after,
            "as_of": self.as_of,
            "stale": self.stale,
            "throttled": self.throttled,
        }


NO_QUOTA = Decision(allowed=True, reason="no quota applies")


class QuotaExceeded(SpendstreamError):
    """Raised by ``guard()`` when admission denies a call; ``decision`` says why."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.reason)
        self.decision = decision
