"""The notification of an anomaly episode: a small typed record, and its row in the outbox.

:meth:`AnomalyNotice.alert` is the one place that maps it onto the outbox's row
(:class:`~spendstream.notifications.records.Notification`: ``budget`` = the rule's name,
``spend`` = the hour's spend, ``limit_usd`` = the expected spend), so the dispatcher,
channels and retries work as for budgets. Not yet a
:class:`~spendstream.notifications.kinds.NotificationRecord` enqueued through ``enqueue``:
it predates that API (docs/notifications.md); moving it there is a follow-up.
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
from spendstream.notifications.records import Delivery, Notification, alert_id
from spendstream.notifications.text import inert
from spendstream.periods import format_time
from spendstream.sinks.versions import next_version

KIND: Final = "anomaly"


@dataclass(frozen=True)
class AnomalyNotice:
    rule: str
    owner: str
    scope: str
    group: str
    started_at: datetime
    expected_usd: Decimal
    observed_usd: Decimal
    method: str
    drivers: tuple[str, ...]  # Explain's top three, at most
    channels: tuple[str, ...]
    episode_id: str

    @classmethod
    def of(cls, rule: AnomalyRule, episode: Episode) -> AnomalyNotice:
        return cls(
            rule.name,
            rule.owner,
            scope_text(rule.scope_filters),
            group_text(episode.group),
            episode.started_at,
            episode.expected_usd,
            episode.observed_usd,
            episode.method,
            episode.drivers[:3],
            tuple(rule.channels),
            episode.episode_id,
        )

    @property
    def alert_id(self) -> str:
        return alert_id(self.rule, KIND, self.started_at, extra=self.episode_id)

    def title(self) -> str:
        return f"[spendstream] {self.rule}: spend anomaly in {self.group}"

    def body(self) -> str:
        excess = self.observed_usd - self.expected_usd
        lines = [
            f"**{inert(self.rule)}: spend anomaly in {inert(self.group)}**",
            f"Rule: {inert(self.rule)}" + (f" (owner: {inert(self.owner)})" if self.owner else ""),
            f"Scope: {inert(self.scope)}",
            f"Hour: {format_time(self.started_at)} to {format_time(self.started_at + INTERVAL)}",
            f"Spend: {format_usd(self.observed_usd)} vs {format_usd(self.expected_usd)} expected "
            f"({self.method} baseline), {format_usd(excess)} above",
        ]
        if self.drivers:
            lines.append("Why (vs the same hour a week before):")
            lines += [f"{n}. {inert(text)}" for n, text in enumerate(self.drivers, 1)]
        lines.append(f"Inbox: spendstream anomalies show {self.episode_id}")
        return "\n".join(lines)

    def alert(
        self, now: datetime, silenced_note: str | None
    ) -> tuple[Notification, list[Delivery]]:
        """The outbox rows: the alert and one delivery per channel."""
        silenced = silenced_note is not None
        alert = Notification(
            alert_id=self.alert_id,
            budget=self.rule,
            kind=KIND,
            period_start=self.started_at,
            period_end=self.started_at + INTERVAL,
            state="silenced" if silenced else "firing",
            owner=self.owner,
            scope=f"{self.scope}; {self.group}",
            channels=list(self.channels),
            spend=self.observed_usd,
            limit_usd=self.expected_usd,
            percent=Decimal(0),
            title=self.title(),
            body=self.body(),
            note=silenced_note or ("" if self.channels else "no channels configured"),
            created_at=now,
            updated_at=now,
            version=next_version(),
        )
        deliveries = [
            Delivery(
                alert_id=alert.alert_id,
                channel=channel,
                budget=self.rule,
                status="silenced" if silenced else "pending",
                created_at=now,
                next_attempt_at=now,
                version=next_version(),
            )
            for channel in self.channels
        ]
        return alert, deliveries
