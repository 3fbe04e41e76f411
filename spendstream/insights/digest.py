"""The scheduled digest: one message per period (``[digest] every``: UTC day or ISO week) to the
``[digest] channels``, through the alert outbox (retries, history, silences do not apply).

Once per period across restarts: the digest is stored as an alert of kind ``digest`` whose id
is keyed on the period's start (``notifications.records.alert_id``), created only when
absent, with its deliveries, in one step (the evaluator's guarantee). It is stored resolved: it
informs, nothing is firing. Content, for the last complete period: spend per team and its change
on the period before, budget status (spend of the budget's own current period against its
limit), quota status (keys blocked now), the top saving opportunities (rightsize, batch,
prompt-cache opportunity, paid twice, re-embedding) with their dollar figures, and the coverage
of required tags. Text from events (team, feature, model names) is made inert
(:func:`spendstream.notifications.text.inert`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from spendstream.alerts.adjust import budget_figures
from spendstream.alerts.config import Alerting
from spendstream.alerts.message import budget_money
from spendstream.config import DigestSettings, InsightsSettings
from spendstream.currency import MissingRate
from spendstream.insights.base import Context, Window, dec, pct
from spendstream.insights.registry import run_insight
from spendstream.logs import get_logger
from spendstream.money import format_usd
from spendstream.notifications.kinds import Digest
from spendstream.notifications.outbox import Outbox
from spendstream.notifications.records import Notification, alert_id
from spendstream.notifications.text import inert
from spendstream.pricing import Pricer
from spendstream.sinks.windows import spend_source, window_parameters

log = get_logger(__name__)

# Per team, the period and the one before it: whole UTC days, so from the lean day rollup (the
# ledger only at edges, of which whole-day periods have none; see sinks.windows).
SPEND_SQL = (
    "SELECT team, sumIf(m_cost_total, day >= toDate({start:DateTime64(3)})) AS spend, "
    "sumIf(m_cost_total, day < toDate({start:DateTime64(3)})) AS previous "
    f"FROM ({spend_source(('team',))}) GROUP BY team ORDER BY spend DESC, team"
)


# Quota status now: keys blocked per quota (the newest decision per key; periods still running).
QUOTA_SQL = (
    "SELECT quota, countIf(NOT allowed) AS blocked, count() AS keys, "
    "arraySort(groupArrayIf(key, NOT allowed)) AS blocked_keys FROM quota_decisions FINAL "
    "WHERE resets_at > {now:DateTime64(3)} GROUP BY quota ORDER BY quota"
)


def digest_period(every: str, now: datetime) -> tuple[datetime, datetime]:
    """The last complete UTC day or ISO week (Monday 00:00) before ``now``."""
    day = datetime(now.year, now.month, now.day, tzinfo=UTC)
    if every == "1d":
        return day - timedelta(days=1), day
    monday = day - timedelta(days=day.weekday())
    return monday - timedelta(days=7), monday


class DigestJob:
    """Builds and records the digest of the last complete period, once."""

    def __init__(
        self,
        store: Outbox,
        pricer: Pricer,
        insights: InsightsSettings,
        digest: DigestSettings,
        alerting: Alerting,
        advice: Callable[[Context], list[tuple[Decimal, str]]] | None = None,
    ) -> None:
        """``advice``: the period's savings as (usd, text), largest first, from the
        recommendations (which leave out dismissed ones; the worker passes
        ``spendstream.advice.digest_advice``); None: the insights' raw opportunities."""
        self.store, self.pricer, self.insights = store, pricer, insights
        self.digest, self.alerting = digest, alerting
        self.advice = advice
        self._done: datetime | None = None  # period known to be recorded (skips the lookup)

    def run(self, now: datetime) -> Notification | None:
        """Record the digest of the last complete period unless it exists; the new alert."""
        if not self.digest.channels:
            return None
        start, end = digest_period(self.digest.every, now)
        if self._done == start:
            return None
        ident = alert_id("digest", "digest", start, 0, self.digest.every)
        if self.store.existing_ids([ident]):
            self._done = start
            log.info("digest already recorded", period_start=start.isoformat())
            return None
        title, body, spend = self.compose(start, end, now)
        alert = self.store.enqueue(
            Digest(
                notification_id=ident,
                subject="digest",
                channels=tuple(self.digest.channels),
                period_start=start,
                period_end=end,
                title=title,
                body=body,
                every=self.digest.every,
                spend=spend,
            ),
            now,
        )
        self._done = start
        log.info("digest recorded", period_start=start.isoformat(), channels=self.digest.channels)
        return alert

    def compose(self, start: datetime, end: datetime, now: datetime) -> tuple[str, str, Decimal]:
        """(title, body, total spend of the period)."""
        reader = self.store.reader
        window = window_parameters(start - (end - start), end)
        rows = reader.query(SPEND_SQL, {**window, "start": start}).rows
        total = sum((dec(row[1]) for row in rows), Decimal(0))
        label = f"{start:%Y-%m-%d} to {end:%Y-%m-%d}"
        lines = [f"**spendstream digest, {label} (UTC)**", f"Spend: {format_usd(total)}"]
        for team, spend, previous in rows:
            change = pct(dec(spend) - dec(previous), dec(previous))
            shown = f" ({'+' if change and change > 0 else ''}{change}% on the period before)"
            lines.append(
                f"- {inert(team or 'unallocated')}: {format_usd(dec(spend))}"
                + (shown if change is not None else "")
            )
        missing: list[MissingRate] = []  # a budget without its rate is left out, and said so
        budgets = budget_figures(reader, self.alerting.budgets, self.alerting, now, missing)
        if budgets:
            lines.append("Budgets (current period):")
            lines += [
                f"- {inert(f.budget.name)}: {budget_money(f.budget, f.spend)} of "
                f"{budget_money(f.budget, f.limit)} ({f.percent}%)"
                + (f" at {f.converted.describe()}" if f.converted else "")
                for f in budgets
            ]
        lines += [f"- {error}" for error in missing]
        quotas = reader.query(QUOTA_SQL, {"now": now}).rows
        if quotas:
            lines.append("Quotas (now):")
            for quota, blocked, keys, blocked_keys in quotas:
                shown = ", ".join(inert(str(key)) for key in list(blocked_keys)[:5])
                lines.append(
                    f"- {inert(str(quota))}: {blocked} of {keys} keys blocked"
                    + (f" ({shown})" if shown else "")
                )
        context = Context(reader, self.pricer, self.insights, Window(start, end))
        savings = (
            self.advice(context)[: self.digest.top] if self.advice else self.opportunities(context)
        )
        if savings:
            lines.append("Top saving opportunities (price estimates):")
            lines += [f"- {format_usd(usd)}: {text}" for usd, text in savings]
        coverage: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
        for row in run_insight("governance", context).rows:
            coverage[row[0]][0] += dec(row[5])
            coverage[row[0]][1] += dec(row[4])
        if coverage:
            lines.append("Required tags, share of spend tagged:")
            lines += [
                f"- {inert(tag)}: {pct(part, whole)}%" for tag, (part, whole) in coverage.items()
            ]
        return f"[spendstream] digest {label}", "\n".join(lines), total

    def opportunities(self, context: Context) -> list[tuple[Decimal, str]]:
        """The ``top`` largest savings as (usd, text); names from events made inert."""
        found: list[tuple[Decimal, str]] = []
        best: dict[tuple[str, str], tuple[Decimal, str]] = {}
        for row in run_insight("rightsize", context).rows:
            feature, model, candidate, saving = (*map(inert, (row[0], row[2], row[10])), row[12])
            if saving is not None and saving > best.get((feature, model), (Decimal(0), ""))[0]:
                best[(feature, model)] = (saving, f"{feature}: {model} -> {candidate} (rightsize)")
        found += best.values()
        for row in run_insight("batch", context).rows:
            found.append((row[7], f"{inert(row[0])}: send {inert(row[2])} as batch"))
        for row in run_insight("caching", context).rows:
            if row[3] in ("prompt_cache_opportunity", "paid_twice"):
                kind = row[3].replace("_", " ")
                found.append((row[6], f"{inert(row[0])}: {inert(row[2])} {kind}"))
        for row in run_insight("embeddings", context).rows:
            found.append((row[7], f"{inert(row[0])}: re-embedding with {inert(row[2])}"))
        found = [(usd, text) for usd, text in found if usd > 0]
        found.sort(key=lambda item: (-item[0], item[1]))
        return found[: self.digest.top]
