"""The notifications of an anomaly episode: one when it opens, one when it ends.

:class:`AnomalyNotice` is a typed record (:mod:`spendstream.notifications.kinds`) enqueued
through :meth:`~spendstream.notifications.outbox.Outbox.enqueue`, which stores it once (its id
derives from the episode's) with one delivery per channel. Its row fills ``spend`` with the
hour's spend and leaves the budget figures (``limit_usd``, ``percent``) at zero: the expected
spend is no limit, and it is in the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from spendstream.anomalies.config import INTERVAL, AnomalyRule
from spendstream.anomalies.episodes import Episode, group_text
from spendstream.matching import scope_text
from spendstream.money import format_usd
from spendstream.notifications.kinds import NotificationBase
from spendstream.notifications.records import Notification, NotificationState, alert_id
from spendstream.notifications.text import inert
from spendstream.periods import format_time

KIND: Final = "anomaly"
SIGNAL_TEXT = {"spend": "", "unit_cost": ", at the usual cost per token"}


@dataclass(frozen=True, kw_only=True)
class AnomalyNotice(NotificationBase):
    """An episode of rule ``subject`` opened (``ended`` False) or ended. ``silenced``: why it
    is recorded without being sent (empty: it is sent)."""

    ended: bool
    owner: str
    scope: str
    observed_usd: Decimal
    silenced: str = ""

    def row(self, now: datetime) -> Notification:
        state: NotificationState = (
            "silenced" if self.silenced else "resolved" if self.ended else "firing"
        )
        note = self.silenced or ("" if self.channels else "no channels configured")
        return self.stored_row(
            now, KIND, state, owner=self.owner, scope=self.scope, spend=self.observed_usd, note=note
        )


def opening_id(rule: str, episode: Episode) -> str:
    return alert_id(rule, KIND, episode.started_at, extra=episode.episode_id)


def ending_id(rule: str, episode: Episode) -> str:
    return alert_id(rule, KIND, episode.started_at, extra=f"{episode.episode_id}:ended")


def _heading(rule: AnomalyRule, episode: Episode, what: str) -> list[str]:
    group = inert(group_text(episode.group))
    owner = f" (owner: {inert(rule.owner)})" if rule.owner else ""
    return [
        f"**{inert(rule.name)}: {what} in {group}**",
        f"Rule: {inert(rule.name)}{owner}",
        f"Scope: {inert(scope_text(rule.scope_filters))}",
    ]


def _record(
    rule: AnomalyRule, episode: Episode, ended: bool, title: str, lines: list[str], silenced: str
) -> AnomalyNotice:
    lines.append(f"Inbox: spendstream anomalies show {episode.episode_id}")
    return AnomalyNotice(
        notification_id=ending_id(rule.name, episode) if ended else opening_id(rule.name, episode),
        subject=rule.name,
        channels=tuple(rule.channels),
        period_start=episode.started_at,
        period_end=(episode.last_anomalous_at if ended else episode.started_at) + INTERVAL,
        title=f"[spendstream] {rule.name}: {title} in {group_text(episode.group)}",
        body="\n".join(lines),
        ended=ended,
        owner=rule.owner,
        scope=f"{scope_text(rule.scope_filters)}; {group_text(episode.group)}",
        observed_usd=episode.observed_usd,
        silenced=silenced,
    )


def opened(rule: AnomalyRule, episode: Episode, silenced: str = "") -> AnomalyNotice:
    """The notice of an episode's first hour, with Explain's top three drivers."""
    excess = episode.observed_usd - episode.expected_usd
    start = episode.started_at
    lines = [
        *_heading(rule, episode, "spend anomaly"),
        f"Hour: {format_time(start)} to {format_time(start + INTERVAL)}",
        f"Spend: {format_usd(episode.observed_usd)} vs {format_usd(episode.expected_usd)} "
        f"expected ({episode.method} baseline{SIGNAL_TEXT.get(episode.signal, '')}), "
        f"{format_usd(excess)} above",
    ]
    if episode.drivers:
        lines.append("Why (vs the same hour a week before):")
        lines += [f"{n}. {inert(text)}" for n, text in enumerate(episode.drivers[:3], 1)]
    return _record(rule, episode, False, "spend anomaly", lines, silenced)


def ended(rule: AnomalyRule, episode: Episode, silenced: str = "") -> AnomalyNotice:
    """The notice that an episode is over: back within its baseline for ``resolve_after``
    hours."""
    quiet = episode.last_anomalous_at + INTERVAL
    lines = [
        *_heading(rule, episode, "spend anomaly over"),
        f"Anomalous from {format_time(episode.started_at)} to {format_time(quiet)}; back "
        f"within its baseline since then ({rule.resolve_after} quiet hours)",
        f"Largest excess in an hour: {format_usd(episode.peak_delta_usd)}",
    ]
    return _record(rule, episode, True, "spend anomaly over", lines, silenced)
