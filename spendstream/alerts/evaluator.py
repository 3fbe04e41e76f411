"""Budget evaluation: ledger figures → alerts (threshold, forecast, spike, reminder) and their
lifecycle (firing → resolved). Blocking; the worker runs it on its own thread.

Exactly once per (budget, kind, period, threshold): the alert id is deterministic, and an alert
is created only when no row with that id exists; the creation inserts are deduplicated by
ClickHouse too. Outbox rows are written with the alert, before any delivery is attempted.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from spendstream.alerts.adjust import budget_figures
from spendstream.alerts.config import Alerting, BudgetConfig, SpikeConfig
from spendstream.alerts.figures import (
    BudgetFigures,
    drilldown_sql,
    prompt_growth,
    top_contributors,
)
from spendstream.alerts.message import render
from spendstream.alerts.why import why
from spendstream.currency import MissingRate
from spendstream.logs import get_logger
from spendstream.matching import scope_text
from spendstream.notifications.outbox import Outbox
from spendstream.notifications.records import (
    Notification,
    NotificationKind,
    Silence,
    alert_id,
)
from spendstream.periods import format_time, period_bounds, utc_now
from spendstream.sinks.versions import next_version

log = get_logger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # spike episodes are keyed on their predecessor


class Candidate:
    """An alert that the figures call for: kind, threshold and the window its id is keyed on."""

    def __init__(
        self,
        figures: BudgetFigures,
        kind: NotificationKind,
        threshold: int = 0,
        window: tuple[datetime, datetime] | None = None,
        extra: str = "",
    ) -> None:
        self.figures, self.kind, self.threshold, self.extra = figures, kind, threshold, extra
        w = figures.windows
        self.window = window or (w.period_start, w.period_end)
        self.id = alert_id(figures.budget.name, kind, self.window[0], threshold, extra)

    def follow(self, previous: Notification | None) -> None:
        """Name the spike episode after ``previous``, the budget's last spike alert (None:
        its first): the same id for every evaluator that sees the same last alert."""
        extra = "first" if previous is None else f"after {previous.alert_id}"
        self.id = alert_id(self.figures.budget.name, self.kind, EPOCH, 0, extra)

    def after(self, resolved_id: str) -> None:
        """Become the episode that follows the resolved alert ``resolved_id``: its id is keyed
        on that one, so every evaluator (and a restart) names the same next episode."""
        b = self.figures.budget.name
        self.id = alert_id(b, self.kind, self.window[0], self.threshold, f"after {resolved_id}")


def crossed_thresholds(figures: BudgetFigures) -> list[int]:
    budget = figures.budget
    return [t for t in budget.thresholds if figures.spend * 100 >= figures.limit * t]


def forecast_overrun(figures: BudgetFigures) -> bool:
    """The forecast says the limit will be exceeded this period, and it is not yet."""
    forecast = figures.forecast
    return (
        figures.budget.forecast
        and forecast is not None
        and forecast > figures.limit
        and figures.spend < figures.limit
    )


def spike_window(figures: BudgetFigures, rule: SpikeConfig) -> tuple[datetime, datetime]:
    """The cooldown a spike alert created now starts: at least the spike window, so the
    spend that fired one page cannot fire another on its own once a shorter cooldown ends."""
    now = figures.windows.now
    return now, now + max(rule.cooldown, rule.window)


def is_spike(figures: BudgetFigures, factor: Decimal, min_spend: Decimal) -> bool:
    """Recent rate above ``factor`` × baseline rate, with at least ``min_spend`` recently."""
    w = figures.windows
    recent_s = Decimal((w.now - w.spike_start).total_seconds())
    baseline_s = Decimal((w.spike_start - w.baseline_start).total_seconds())
    if figures.recent_spend < min_spend or recent_s <= 0 or baseline_s <= 0:
        return False
    return figures.recent_spend / recent_s > factor * figures.baseline_spend / baseline_s


class BudgetEvaluator:
    """Evaluates budgets against the ledger and records the alerts they call for."""

    def __init__(self, alerting: Alerting, store: Outbox) -> None:
        self.alerting = alerting
        self.store = store
        self.known: set[str] = set()  # ids known to exist: skips the lookup

    def budgets(self, names: Iterable[str] | None) -> list[BudgetConfig]:
        if names is None:
            return list(self.alerting.budgets)
        wanted = set(names)
        return [b for b in self.alerting.budgets if b.name in wanted]

    def figures(self, budgets: Sequence[BudgetConfig], now: datetime) -> list[BudgetFigures]:
        """Figures in each budget's currency, with rollover. A budget whose exchange rate is
        missing is not evaluated this pass: logged as an error naming the day, never guessed."""
        missing: list[MissingRate] = []
        found = budget_figures(self.store.reader, budgets, self.alerting, now, missing)
        for error in missing:
            log.error("budget not evaluated: missing exchange rate", error=str(error))
        return found

    def ended_figures(self, budgets: Sequence[BudgetConfig], now: datetime) -> list[BudgetFigures]:
        """Figures of each budget's previous period, while it ended less than ``late_grace``
        ago, at its last instant (so late events dated inside it count)."""
        grace = self.alerting.alerts.late_grace
        recent, instants = [], []
        for b in budgets:
            start, _ = period_bounds(b.period, b.timezone, now, b.fiscal_year_start)
            if now - start < grace:
                recent.append(b)
                instants.append(start - timedelta(milliseconds=1))
        if not recent:
            return []
        missing: list[MissingRate] = []
        found = budget_figures(self.store.reader, recent, self.alerting, now, missing, instants)
        for error in missing:
            log.error("ended period not evaluated: missing exchange rate", error=str(error))
        return [replace(f, ended=True) for f in found]

    def evaluate(
        self, names: Iterable[str] | None = None, now: datetime | None = None
    ) -> list[Notification]:
        """Evaluate ``names`` (all budgets when None) at ``now``; return the alerts created."""
        now = now or utc_now()
        budgets = self.budgets(names)
        if not budgets:
            return []
        all_figures = [
            replace(f, prompts=prompt_growth(self.store.reader, f.budget, now))
            if f.budget.prompt_growth
            else f
            for f in self.figures(budgets, now)
        ]
        firing = self.store.firing({f.budget.name for f in all_figures})
        candidates = self.spike_episodes([c for f in all_figures for c in self.candidates(f)])
        self.next_episodes(candidates, {a.alert_id for a in firing})
        # Thresholds of the period that just ended, crossed by late events: the same ids as
        # on-time crossings (never twice), and no episode chain (its alerts all resolved as
        # "period ended", which is not spend falling back under).
        candidates += [
            Candidate(f, "threshold", t)
            for f in self.ended_figures(budgets, now)
            for t in crossed_thresholds(f)
        ]
        candidates += self.reminders(all_figures, firing, now)
        unknown = [c.id for c in candidates if c.id not in self.known]
        self.known |= self.store.existing_ids(unknown)
        fresh = [c for c in candidates if c.id not in self.known]
        created = self.create(fresh, now) if fresh else []
        self.resolve(all_figures, now, firing)
        return created

    def spike_episodes(self, candidates: list[Candidate]) -> list[Candidate]:
        """A spike pages once per episode: none while the budget's last spike alert is in its
        cooldown (counted from that alert, not from fixed slots of the clock, which paged the
        same spike again at each slot boundary); after it, a spike still or again under way
        is a new episode, keyed on the last alert, so replays, restarts and a new leader
        name the same one."""
        spikes = [c for c in candidates if c.kind == "spike"]
        if not spikes:
            return candidates
        last = self.store.latest("spike", {c.figures.budget.name for c in spikes})
        kept = []
        for c in candidates:
            if c.kind == "spike":
                previous = last.get(c.figures.budget.name)
                cooldown = c.window[1] - c.window[0]
                if previous is not None and c.figures.windows.now < previous.created_at + cooldown:
                    continue
                c.follow(previous)
            kept.append(c)
        return kept

    def next_episodes(self, candidates: Sequence[Candidate], firing: set[str]) -> None:
        """A threshold crossed again after its alert resolved (spend fell back under, e.g. after
        a re-rating, then rose over again) is a new episode, fired once like the first: follow
        the chain of resolved episodes to the current one. A firing alert costs no lookup;
        while spend stays over, the current episode exists and nothing new is created."""
        pending = [c for c in candidates if c.kind == "threshold" and c.id not in firing]
        while pending:
            states = self.store.alert_states([c.id for c in pending])
            self.known |= states.keys()
            pending = [c for c in pending if states.get(c.id) == "resolved"]
            for c in pending:
                c.after(c.id)

    def candidates(self, figures: BudgetFigures) -> list[Candidate]:
        found = [Candidate(figures, "threshold", t) for t in crossed_thresholds(figures)]
        if forecast_overrun(figures):
            found.append(Candidate(figures, "forecast"))
        rule = figures.budget.spike_rule(self.alerting.alerts.spike)
        if rule and is_spike(figures, rule.factor, rule.min_spend):
            found.append(Candidate(figures, "spike", window=spike_window(figures, rule)))
        growth = figures.budget.prompt_growth
        if growth and figures.prompts:
            change = figures.prompts.growth_pct(growth.min_events)
            if change is not None and change >= growth.increase_pct:
                # at most one per budget and ISO week (Monday 00:00 UTC)
                day = figures.windows.now.date()
                monday = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(
                    days=day.weekday()
                )
                window = (monday, monday + timedelta(days=7))
                found.append(Candidate(figures, "prompt_growth", growth.increase_pct, window))
        return found

    def reminders(
        self, all_figures: Sequence[BudgetFigures], firing: Sequence[Notification], now: datetime
    ) -> list[Candidate]:
        """One reminder per elapsed ``reminder`` interval for the highest firing threshold
        (keyed on that alert when it is a later episode, so its reminders are new ones)."""
        by_name = {f.budget.name: f for f in all_figures if f.budget.reminder}
        if not by_name:
            return []
        found = []
        latest: dict[str, Notification] = {}
        for alert in firing:
            if alert.budget in by_name and (
                alert.kind == "threshold"
                and alert.threshold >= latest.get(alert.budget, alert).threshold
            ):
                latest[alert.budget] = alert
        for name, alert in latest.items():
            figures = by_name[name]
            interval = figures.budget.reminder
            assert interval is not None
            count = int((now - alert.created_at) / interval)
            if count >= 1 and alert.period_start == figures.windows.period_start:
                first = Candidate(figures, "threshold", alert.threshold).id == alert.alert_id
                extra = str(count) if first else f"{count} of {alert.alert_id}"
                found.append(Candidate(figures, "reminder", alert.threshold, extra=extra))
        return found

    def create(self, candidates: Sequence[Candidate], now: datetime) -> list[Notification]:
        silences = self.store.active_silences(now)
        contributors: dict[str, dict[str, list[tuple[str, Decimal]]]] = {}
        created = []
        building = time.monotonic()
        for c in candidates:
            budget = c.figures.budget
            if budget.name not in contributors:
                contributors[budget.name] = top_contributors(
                    self.store.reader, c.figures, self.alerting.alerts.top_contributors
                )
            alert = self.build(c, contributors[budget.name], silences.get(budget.name), now)
            created.append((c, alert))
        # Built first (the contributor queries are the slow part), then stored together with one
        # creation time: alerts crossing together become due together and go out as one message
        # (storing each as it was built let the dispatcher send the first alone under load).
        stored_at = now + timedelta(seconds=time.monotonic() - building)  # `now` may be a test's
        for c, alert in created:
            self.store.put(alert, stored_at)
            self.known.add(alert.alert_id)
            log.info(
                "alert created",
                alert_id=alert.alert_id,
                budget=alert.budget,
                kind=c.kind,
                threshold=c.threshold,
                state=alert.state,
                spend=str(alert.spend),
                channels=c.figures.budget.channels,
            )
        return [alert for _, alert in created]

    def build(
        self,
        c: Candidate,
        contributors: dict[str, list[tuple[str, Decimal]]],
        silence: Silence | None,
        now: datetime,
    ) -> Notification:
        figures, budget = c.figures, c.figures.budget
        reason = why(self.store.reader, c.kind, figures, now)
        title, body = render(
            c.kind, c.threshold, figures, contributors, drilldown_sql(figures), reason
        )
        note = ""
        if silence is not None:
            note = f"silenced until {format_time(silence.until)} by {silence.created_by or '?'}"
            note += f": {silence.reason}" if silence.reason else ""
        elif not budget.channels:
            note = "no channels configured"
        return Notification(
            alert_id=c.id,
            budget=budget.name,
            kind=c.kind,
            threshold=c.threshold,
            period_start=c.window[0],
            period_end=c.window[1],
            state="silenced" if silence is not None else "firing",
            owner=budget.owner,
            scope=scope_text(budget.scope_filters),
            channels=list(budget.channels),
            spend=figures.spend,
            limit_usd=figures.limit,  # in the budget's currency when it has one
            percent=figures.percent,
            forecast_usd=figures.forecast,
            overrun_at=figures.overrun_at,
            title=title,
            body=body,
            note=note,
            created_at=now,
            updated_at=now,
            version=next_version(),
        )

    def resolve(
        self,
        all_figures: Sequence[BudgetFigures],
        now: datetime,
        firing: Sequence[Notification] | None = None,
    ) -> list[Notification]:
        """Resolve firing alerts whose period ended or whose spend fell back under (re-rating)."""
        by_name = {f.budget.name: f for f in all_figures}
        resolved = []
        for alert in self.store.firing(by_name) if firing is None else firing:
            if alert.budget not in by_name:
                continue
            figures = by_name[alert.budget]
            note = ""
            if alert.period_end <= now:
                note = "period ended"
            elif (
                alert.kind in ("threshold", "reminder")
                and alert.period_start == figures.windows.period_start
                and figures.spend * 100 < figures.limit * alert.threshold
            ):
                note = f"spend back under {alert.threshold}% ({figures.spend})"
            if note:
                resolved.append(
                    alert.model_copy(
                        update={
                            "state": "resolved",
                            "resolved_at": now,
                            "updated_at": now,
                            "note": note,
                            "version": next_version(),
                        }
                    )
                )
        self.store.update_alerts(resolved)
        for alert in resolved:
            log.info(
                "alert resolved", alert_id=alert.alert_id, budget=alert.budget, note=alert.note
            )
        return resolved
