"""The seasonal baseline of one hour's spend and the verdict on it. Pure: no I/O.

For the hour starting at ``at`` the baseline reads the same local hour of the week in each of
the last ``weeks`` weeks (``rule.timezone``: 167 or 169 h back across a DST change). Centre:
their median. Spread, the largest of

- ``1.4826 × MAD`` of those points (their own scatter);
- the group's usual relative scatter around its own centres over the previous 7 days
  (``1.4826 × median |spend / centre − 1|`` over those hours, × this centre), once 24 such
  hours exist: a handful of weekly points alone says little about the noise;
- ``min_spread_pct`` % of the centre (a perfectly regular history never pages on a cent).

Cold start, while the scope's history (its first hour with spend, ``history_start``) is short:

- at least ``min_weeks`` of those weekly points lie inside the history: **seasonal**;
- else at least :data:`MIN_DAYS` of the same hour on the previous 14 days of the same kind
  (weekday or weekend; the 7 latest): **daily**, with the threshold widened by
  :data:`DAILY_WIDENING`;
- else **learning**: never anomalous.

A point inside the history where a group had no spend counts as zero: a new feature or user
stands against a baseline of nothing, and only ``min_delta_usd`` keeps it from paging.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from spendstream.anomalies.config import AnomalyRule

ZERO = Decimal(0)
MAD_SCALE = Decimal("1.4826")  # MAD x this estimates a normal distribution's deviation
DAILY_WIDENING = Decimal("1.5")
MIN_DAYS = 2
RESIDUAL_HOURS = 168  # the window of the relative scatter
# Its offsets, made once: the window is walked for every hour of every group.
RESIDUAL_STEPS = tuple(timedelta(hours=k) for k in range(1, RESIDUAL_HOURS + 1))
MIN_RESIDUALS = 24
Method = Literal["seasonal", "daily", "learning"]
Signal = Literal["spend", "unit_cost"]  # what a verdict judged (spendstream.anomalies.signals)


def median(values: Sequence[Decimal]) -> Decimal:
    """The median (the mean of the two middle values for an even count); 0 for none."""
    if not values:
        return ZERO
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def mad(values: Sequence[Decimal], center: Decimal) -> Decimal:
    """The median absolute deviation from ``center``."""
    return median([abs(value - center) for value in values])


@dataclass(frozen=True)
class Baseline:
    method: Method
    hours: tuple[datetime, ...]  # the interval starts read
    points: tuple[Decimal, ...]
    center: Decimal
    spread: Decimal  # after the floor


@dataclass(frozen=True)
class Verdict:
    at: datetime  # the interval's start
    observed: Decimal
    baseline: Baseline
    threshold: Decimal  # observed above this (and min_delta_usd above the centre) is anomalous
    anomalous: bool
    signal: Signal = "spend"
    tokens: int = 0  # the hour's tokens, for the unit-cost signal

    @property
    def expected(self) -> Decimal:
        """The expected spend: the centre, or for the unit-cost signal the hour's tokens at the
        usual cost per token."""
        if self.signal == "unit_cost":
            return self.baseline.center * self.tokens
        return self.baseline.center

    @property
    def delta(self) -> Decimal:
        return self.observed - self.expected


def reference_hours(
    at: datetime, rule: AnomalyRule, history_start: datetime | None
) -> tuple[Method, tuple[datetime, ...]]:
    """Which past interval starts the baseline of the hour starting at ``at`` reads."""
    if history_start is None:
        return "learning", ()
    local = at.astimezone(ZoneInfo(rule.timezone))

    def back(step: timedelta, count: int) -> tuple[datetime, ...]:
        moments = ((local - step * k).astimezone(UTC) for k in range(1, count + 1))
        return tuple(m for m in moments if m >= history_start)

    weekly = back(timedelta(weeks=1), rule.weeks)
    if len(weekly) >= rule.min_weeks:
        return "seasonal", weekly
    weekend = local.weekday() >= 5
    same_kind = [
        m
        for m in back(timedelta(days=1), 14)
        if (m.astimezone(local.tzinfo).weekday() >= 5) == weekend
    ]
    if len(same_kind) >= MIN_DAYS:
        return "daily", tuple(same_kind[:7])
    return "learning", ()


class GroupBaselines:
    """The baselines of one group's ``series`` (spend per interval start; absent = 0), with
    each hour's centre computed once (the relative scatter reads a week of them).

    ``ratio``: the series is a ratio (cost per token), undefined where absent: absent hours
    are no points, ``floor_pct`` replaces ``min_spread_pct``, and a centre with fewer points
    than its method needs is ``learning``."""

    def __init__(
        self,
        series: Mapping[datetime, Decimal],
        rule: AnomalyRule,
        history_start: datetime | None,
        *,
        ratio: bool = False,
    ) -> None:
        self.series, self.rule, self.history_start = series, rule, history_start
        self.ratio = ratio
        self.floor_pct = rule.unit_cost_min_spread_pct if ratio else rule.min_spread_pct
        self.centers: dict[
            datetime, tuple[Method, tuple[datetime, ...], tuple[Decimal, ...], Decimal]
        ] = {}
        self.residuals: dict[datetime, Decimal | None] = {}
        # an hour's baseline is asked again as the hour before a later one (signals.carried)
        self.baselines: dict[datetime, Baseline] = {}

    def center(
        self, at: datetime
    ) -> tuple[Method, tuple[datetime, ...], tuple[Decimal, ...], Decimal]:
        found = self.centers.get(at)
        if found is None:
            method, hours = reference_hours(at, self.rule, self.history_start)
            if self.ratio:
                hours = tuple(hour for hour in hours if hour in self.series)
                needed = self.rule.min_weeks if method == "seasonal" else MIN_DAYS
                if len(hours) < needed:
                    method, hours = "learning", ()
            points = tuple(self.series.get(hour, ZERO) for hour in hours)
            found = self.centers[at] = (method, hours, points, median(points))
        return found

    def residual(self, hour: datetime) -> Decimal | None:
        """``|spend / centre − 1|`` of ``hour`` (None: a learning or zero centre, or no point
        of a ratio); each computed once, as the window slides."""
        if hour not in self.residuals:
            method, _, _, center = self.center(hour)
            usable = method != "learning" and center > 0 and (hour in self.series or not self.ratio)
            found = abs(self.series.get(hour, ZERO) / center - 1) if usable else None
            self.residuals[hour] = found
        return self.residuals[hour]

    def relative_scatter(self, at: datetime) -> Decimal:
        """``1.4826 × median |spend / centre − 1|`` over the previous week's hours with a
        non-learning, positive centre (0 with fewer than :data:`MIN_RESIDUALS` of them)."""
        known = self.residuals  # looked up inline: ~170 hours for every hour of every group
        hours = [at - step for step in RESIDUAL_STEPS]
        window = [known[hour] if hour in known else self.residual(hour) for hour in hours]
        residuals = [r for r in window if r is not None]
        return MAD_SCALE * median(residuals) if len(residuals) >= MIN_RESIDUALS else ZERO

    def baseline(self, at: datetime) -> Baseline:
        if at not in self.baselines:
            method, hours, points, center = self.center(at)
            spread = max(
                MAD_SCALE * mad(points, center),
                center * self.relative_scatter(at),
                center * self.floor_pct / 100,
            )
            self.baselines[at] = Baseline(method, hours, points, center, spread)
        return self.baselines[at]


def baseline_of(
    series: Mapping[datetime, Decimal],
    at: datetime,
    rule: AnomalyRule,
    history_start: datetime | None,
) -> Baseline:
    """The baseline of ``series`` (spend per interval start; absent = 0) for the hour ``at``."""
    return GroupBaselines(series, rule, history_start).baseline(at)


def judge(observed: Decimal, base: Baseline, rule: AnomalyRule, at: datetime) -> Verdict:
    """Anomalous: above ``centre + sensitivity × spread`` (widened while daily) and at least
    ``min_delta_usd`` above the centre; never while learning. Only rises page: spend that
    falls is no cost to explain."""
    widening = DAILY_WIDENING if base.method == "daily" else Decimal(1)
    threshold = base.center + rule.sensitivity * widening * base.spread
    anomalous = (
        base.method != "learning"
        and observed > threshold
        and observed - base.center >= rule.min_delta_usd
    )
    return Verdict(at, observed, base, threshold, anomalous)
