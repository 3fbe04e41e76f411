"""Anomaly detection: each newly completed hour of every rule, judged on its two signals
(:mod:`spendstream.anomalies.signals`), opens, continues or ends episodes; an opening and an
end each enqueue one notice. Blocking; run as a job of the alert service's evaluation thread,
so only the holder of the alerting lease evaluates.

Exactly once per episode, across restarts and workers: the episode id is a hash of (rule,
group, first hour) and its opening insert is deduplicated; each notice's id derives from the
episode's, and ``enqueue`` stores it only when absent. An opening writes the episode first,
then its notice; every pass re-creates the notice of an active episode that lacks one (a crash
between the two inserts). An end enqueues its notice first, then ends the episode: a crash
between the two leaves the episode active, and the next pass ends it again, finding the
notice stored. A silenced rule (``spendstream anomalies silence``) records its notices as
``silenced``, sending nothing. A person's inbox state lives in another table, so nothing here
overwrites it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from spendstream.anomalies import notice, store
from spendstream.anomalies.baseline import RESIDUAL_HOURS, Verdict
from spendstream.anomalies.config import INTERVAL, AnomalyRule
from spendstream.anomalies.episodes import Episode, Group, episode_id, step
from spendstream.anomalies.series import Hourly, history_start, hourly_spend
from spendstream.anomalies.signals import GroupWatch
from spendstream.explain import Explanation, Scope, explain
from spendstream.logs import get_logger
from spendstream.notifications.outbox import Outbox
from spendstream.periods import format_time
from spendstream.sinks.access import ClientReader, Reader
from spendstream.sinks.versions import next_version

log = get_logger(__name__)
CATCH_UP = 24  # hours evaluated at most in one pass after a gap (a restart, a lease hand-over)
TOP_DRIVERS = 3
Explainer = Callable[
    [Reader, Scope, tuple[datetime, datetime], tuple[datetime, datetime]], Explanation
]


def floor_hour(moment: datetime) -> datetime:
    seconds = int(moment.timestamp()) // 3600 * 3600
    return datetime.fromtimestamp(seconds, UTC)


def episode_teams(rule: AnomalyRule, group: Group) -> tuple[str, ...]:
    """The teams an episode's spend belongs to: its group's team, else the rule's exact team
    filter; empty (visible to every-team tokens only) otherwise."""
    for key, value in group:
        if key == "team":
            return (value,)
    teams = rule.scope_filters.get("team", ())
    return tuple(sorted(teams)) if teams and not any("*" in t for t in teams) else ()


class AnomalyDetector:
    def __init__(
        self,
        rules: Sequence[AnomalyRule],
        alerts: Outbox,
        explainer: Explainer = explain,
    ) -> None:
        """``alerts``: the outbox, on a writable client also used for the episodes."""
        self.rules = rules
        self.alerts = alerts
        self.client = alerts.client
        self.reader: Reader = ClientReader(alerts.client)
        self.explainer = explainer
        self.last_done: dict[str, datetime] = {}
        self.first_hour: dict[str, datetime] = {}

    def run(self, now: datetime) -> bool:
        """Evaluate the hours completed since the last pass; True when notices were created."""
        created = False
        for rule in self.rules:
            latest = floor_hour(now - rule.settle) - INTERVAL
            previous = self.last_done.get(rule.name, latest - INTERVAL)
            first = max(previous + INTERVAL, latest - INTERVAL * (CATCH_UP - 1))
            count = int((latest - first) / INTERVAL) + 1
            if count <= 0:
                continue
            created |= self.evaluate(rule, [first + INTERVAL * i for i in range(count)], now)
            self.last_done[rule.name] = latest
        return created

    def history(self, rule: AnomalyRule, until: datetime) -> datetime | None:
        known = self.first_hour.get(rule.name)
        if known is None:
            epoch = datetime(2000, 1, 1, tzinfo=UTC)
            found = history_start(self.reader, rule, epoch, until)
            if found is not None:
                self.first_hour[rule.name] = known = found
        return known

    def evaluate(self, rule: AnomalyRule, hours: Sequence[datetime], now: datetime) -> bool:
        """Judge every group of ``rule`` in each of ``hours`` (ascending interval starts)."""
        # The weekly points of every hour of the relative scatter's window, too.
        lo = hours[0] - timedelta(weeks=rule.weeks, hours=RESIDUAL_HOURS)
        hi = hours[-1] + INTERVAL
        series = hourly_spend(self.reader, rule, lo, hi)
        first = self.history(rule, hi)
        active = {e.group: e for e in store.active_episodes(self.reader, rule.name)}
        created = self.ensure_notices(rule, list(active.values()), now)
        watches: dict[Group, GroupWatch] = {}
        for at in hours:
            for group in sorted(set(series) | set(active)):
                if group not in watches:
                    hourly = series.get(group, Hourly())
                    watches[group] = GroupWatch(hourly.spend, hourly.tokens, rule, first)
                verdict = watches[group].verdict(at)
                current = active.get(group)
                change = step(current, verdict, rule.resolve_after)
                if change == "open":
                    active[group] = self.open(rule, group, verdict, now)
                    created |= self.ensure_notices(rule, [active[group]], now)
                elif change == "continue" and current is not None:
                    active[group] = replace(
                        current,
                        last_anomalous_at=at,
                        peak_delta_usd=max(current.peak_delta_usd, verdict.delta),
                        version=next_version(),
                    )
                    store.update_episode(self.client, active[group])
                elif change == "end" and current is not None:
                    self.end(rule, current, now)
                    del active[group]
        return created

    def open(self, rule: AnomalyRule, group: Group, verdict: Verdict, now: datetime) -> Episode:
        at = verdict.at
        episode = Episode(
            episode_id=episode_id(rule.name, group, at),
            rule=rule.name,
            group=group,
            teams=episode_teams(rule, group),
            started_at=at,
            last_anomalous_at=at,
            ended_at=None,
            expected_usd=verdict.expected,
            observed_usd=verdict.observed,
            peak_delta_usd=verdict.delta,
            method=verdict.baseline.method,
            drivers=self.drivers(rule, group, at),
            detected_at=now,
            version=next_version(),
            signal=verdict.signal,
        )
        store.open_episode(self.client, episode)
        log.info(
            "anomaly episode opened",
            rule=rule.name,
            group=list(group),
            hour=format_time(at),
            signal=verdict.signal,
            observed=str(verdict.observed),
            expected=str(verdict.expected),
        )
        return episode

    def drivers(self, rule: AnomalyRule, group: Group, at: datetime) -> tuple[str, ...]:
        """Explain's top drivers of the hour vs the same hour a week before (none for a glob
        scope, which Explain cannot filter exactly, or when Explain fails)."""
        filters: dict[str, tuple[str, ...]] = dict(rule.scope_filters)
        if any("*" in value for values in filters.values() for value in values):
            return ()
        filters.update({key: (value,) for key, value in group})
        week = timedelta(weeks=1)
        try:
            explanation = self.explainer(
                self.reader, Scope(filters), (at, at + INTERVAL), (at - week, at + INTERVAL - week)
            )
        except Exception as exc:  # the notice matters more than its explanation
            log.warning("explain failed for an anomaly", rule=rule.name, error=str(exc)[:200])
            return ()
        return tuple(explanation.top_drivers()[:TOP_DRIVERS])

    def silenced(self, rule: AnomalyRule, now: datetime) -> str:
        """Why the rule's notices are not sent now (empty: they are)."""
        silence = self.alerts.active_silences(now).get(rule.name)
        if silence is None:
            return ""
        return f"silenced until {format_time(silence.until)} by {silence.created_by or '?'}"

    def ensure_notices(self, rule: AnomalyRule, episodes: Sequence[Episode], now: datetime) -> bool:
        """Enqueue the opening notice of each episode that has none yet; True when one was."""
        ids = {notice.opening_id(rule.name, e): e for e in episodes}
        missing = sorted(set(ids) - self.alerts.existing_ids(list(ids)))
        reason = self.silenced(rule, now) if missing else ""
        for key in missing:
            self.alerts.enqueue(notice.opened(rule, ids[key], reason), now)
        return bool(missing)

    def end(self, rule: AnomalyRule, episode: Episode, now: datetime) -> None:
        """Resolve the opening's alert, enqueue the ending's notice, then end the episode (in
        this order: see the module doc)."""
        opening = notice.opening_id(rule.name, episode)
        found = self.alerts.alerts("alert_id = {id:String}", {"id": opening})
        quiet = format_time(episode.last_anomalous_at + INTERVAL)
        self.alerts.update_alerts(
            [
                a.model_copy(
                    update={
                        "state": "resolved",
                        "resolved_at": now,
                        "updated_at": now,
                        "note": f"back within its baseline since {quiet}",
                        "version": next_version(),
                    }
                )
                for a in found
                if a.state == "firing"
            ]
        )
        # Nobody heard of an opening that was silenced: nor of its end.
        unheard = any(a.state == "silenced" for a in found)
        reason = self.silenced(rule, now) or ("its opening was silenced" if unheard else "")
        self.alerts.enqueue(notice.ended(rule, episode, reason), now)
        store.update_episode(self.client, replace(episode, ended_at=now, version=next_version()))
        log.info("anomaly episode ended", rule=rule.name, group=list(episode.group))


__all__ = ["AnomalyDetector", "floor_hour"]
