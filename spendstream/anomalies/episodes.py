"""Anomaly episodes: opened once, ended once, and the inbox state people give them. Pure.

An episode of a (rule, group) opens at the first anomalous hour while none is active, stays
active while hours keep being anomalous, and ends after ``resolve_after`` quiet hours in a row.
Its id is a hash of (rule, group, first hour), so re-evaluating the same hour (a restart, a
second worker during a lease hand-over) names the same episode and creates nothing new.

The detector writes only episodes; people write only actions (``anomaly_actions``, the audit
log). The inbox state folds both in time order: ``open`` at detection; each action sets its
state; the detector's end sets ``resolved`` unless a person already resolved or dismissed it.
Neither writer can overwrite the other's row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from spendstream.anomalies.baseline import Verdict
from spendstream.anomalies.config import INTERVAL
from spendstream.decisions import pairs_text

Group = tuple[tuple[str, str], ...]  # (tag, value) pairs in group_by order
InboxState = Literal["open", "acknowledged", "resolved", "dismissed"]
INBOX_STATES: tuple[InboxState, ...] = ("open", "acknowledged", "resolved", "dismissed")
DETECTOR = "spendstream"  # the actor of detections and automatic resolutions
Step = Literal["open", "continue", "end", "none"]


def group_text(group: Group) -> str:
    """``team=support, feature=(none)`` for people: notifications (``all`` without group_by)."""
    return pairs_text(group) or "all"


def group_label(group: Group) -> str:
    """``team=support, feature=``: the values as stored, for the API and episode ids."""
    return pairs_text(group, empty="") or "all"


def episode_id(rule: str, group: Group, started_at: datetime) -> str:
    # As every release has hashed it: an open episode keeps its id on upgrade.
    key = f"{rule}|{group_label(group)}|{started_at.astimezone(UTC).isoformat()}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Episode:
    episode_id: str
    rule: str
    group: Group
    teams: tuple[str, ...]  # the teams whose spend it is about (empty: several or unknown)
    started_at: datetime  # the first anomalous hour's start
    last_anomalous_at: datetime  # the latest anomalous hour's start
    ended_at: datetime | None  # set once, by the detector
    expected_usd: Decimal  # of the first hour
    observed_usd: Decimal
    peak_delta_usd: Decimal
    method: str  # seasonal or daily
    drivers: tuple[str, ...]  # Explain's top drivers at detection
    detected_at: datetime
    version: int
    signal: str = "spend"  # what opened it: spend, or unit_cost (cost per token; migration 1002)

    @property
    def active(self) -> bool:
        return self.ended_at is None


def step(active: Episode | None, verdict: Verdict, resolve_after: int) -> Step:
    """What the verdict on one hour does to the (rule, group)'s active episode."""
    if active is None:
        return "open" if verdict.anomalous else "none"
    if verdict.at <= active.last_anomalous_at:
        return "none"  # an hour already counted (a repeated pass)
    if verdict.anomalous:
        return "continue"
    if verdict.at >= active.last_anomalous_at + INTERVAL * resolve_after:
        return "end"
    return "none"


@dataclass(frozen=True)
class Action:
    """A person's state change, as audited."""

    episode_id: str
    state: InboxState
    actor: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class InboxStatus:
    state: InboxState
    by: str
    at: datetime


def inbox_status(episode: Episode, actions: Iterable[Action]) -> InboxStatus:
    """The episode's inbox state: who set it and when (module doc)."""
    status = InboxStatus("open", DETECTOR, episode.detected_at)
    events: list[tuple[datetime, int, Action | None]] = [(a.at, 0, a) for a in actions]
    if episode.ended_at is not None:
        events.append((episode.ended_at, 1, None))
    for at, _, action in sorted(events, key=lambda e: (e[0], e[1])):
        if action is not None:
            status = InboxStatus(action.state, action.actor, at)
        elif status.state in ("open", "acknowledged"):
            status = InboxStatus("resolved", DETECTOR, at)
    return status
