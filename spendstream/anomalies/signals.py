"""The two signals an anomaly rule watches per group, and the verdict on one hour. Pure.

- **spend** per hour against its seasonal baseline (:mod:`spendstream.anomalies.baseline`):
  volume bursts, prompt growth, runaway users, new traffic;
- **cost per token** (spend ÷ input and output tokens) against its own seasonal baseline: a
  price change or a cache that stops hitting moves it at once and by the whole change, while
  the hour-to-hour noise of volume, which hides such a change in spend for hours, cancels
  out of the ratio. Its dollar excess is the hour's spend minus the same tokens at the usual
  cost per token; ``min_delta_usd`` gates the excess of the run of hours (at most
  :data:`RUN_HOURS`, this one included) whose cost per token stayed above its threshold: a
  change worth $1.50 an hour on a quiet Sunday is the same change as $15 on a Monday, and the
  second hour of it carries $3. Hours without tokens (usage units only) have no cost per
  token and are judged on spend alone.

The hour is anomalous when either signal is; the verdict kept is the one with the larger
excess (spend when neither is anomalous).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from spendstream.anomalies.baseline import (
    DAILY_WIDENING,
    ZERO,
    Baseline,
    GroupBaselines,
    Verdict,
    judge,
)
from spendstream.anomalies.config import AnomalyRule

Tokens = Mapping[datetime, int]
HOUR = timedelta(hours=1)
# A cost per token above its threshold this many hours in a row (this hour included) adds up
# against min_delta_usd: a sustained change pages by its second hour, one noisy hour never.
RUN_HOURS = 2


def unit_costs(spend: Mapping[datetime, Decimal], tokens: Tokens) -> dict[datetime, Decimal]:
    """Cost per token of every hour with tokens."""
    return {at: spend.get(at, ZERO) / count for at, count in tokens.items() if count > 0}


def judge_unit_cost(
    spend: Decimal,
    tokens: int,
    base: Baseline,
    rule: AnomalyRule,
    at: datetime,
    carried: Decimal = ZERO,
) -> Verdict:
    """Anomalous: the cost per token above ``centre + sensitivity × spread`` (widened while
    daily) and the hour's spend above its tokens at the centre by at least ``min_delta_usd``
    together with ``carried``, the excess of the hours just before that were above too."""
    threshold = unit_cost_threshold(base, rule, tokens)
    anomalous = (
        above(spend, tokens, base, rule)
        and spend - base.center * tokens + carried >= rule.min_delta_usd
    )
    return Verdict(at, spend, base, threshold, anomalous, "unit_cost", tokens)


def unit_cost_threshold(base: Baseline, rule: AnomalyRule, tokens: int) -> Decimal:
    """The spend above which ``tokens`` cost more per token than ``centre + sensitivity ×
    spread`` (widened while the baseline is daily)."""
    widening = DAILY_WIDENING if base.method == "daily" else Decimal(1)
    return (base.center + rule.sensitivity * widening * base.spread) * tokens


def above(spend: Decimal, tokens: int, base: Baseline, rule: AnomalyRule) -> bool:
    """The cost per token above its threshold (never while learning)."""
    return (
        base.method != "learning" and tokens > 0 and spend > unit_cost_threshold(base, rule, tokens)
    )


class GroupWatch:
    """Both signals of one group: ``spend`` and ``tokens`` per interval start (absent: none)."""

    def __init__(
        self,
        spend: Mapping[datetime, Decimal],
        tokens: Tokens,
        rule: AnomalyRule,
        history_start: datetime | None,
    ) -> None:
        self.spend, self.tokens, self.rule = spend, tokens, rule
        self.spend_baselines = GroupBaselines(spend, rule, history_start)
        self.unit_baselines = GroupBaselines(
            unit_costs(spend, tokens), rule, history_start, ratio=True
        )

    def verdict(self, at: datetime) -> Verdict:
        spend = self.spend.get(at, ZERO)
        by_spend = judge(spend, self.spend_baselines.baseline(at), self.rule, at)
        tokens = self.tokens.get(at, 0)
        if not self.rule.unit_cost or tokens <= 0:
            return by_spend
        base = self.unit_baselines.baseline(at)
        by_unit = judge_unit_cost(spend, tokens, base, self.rule, at, self.carried(at))
        anomalous = [v for v in (by_spend, by_unit) if v.anomalous]
        return max(anomalous, key=lambda v: v.delta) if anomalous else by_spend

    def carried(self, at: datetime) -> Decimal:
        """The cost-per-token excess of the hours just before ``at`` (up to
        :data:`RUN_HOURS` - 1) whose cost per token was above its threshold, in a row."""
        excess = ZERO
        for back in range(1, RUN_HOURS):
            hour = at - back * HOUR
            tokens = self.tokens.get(hour, 0)
            if tokens <= 0:
                break
            spend, base = self.spend.get(hour, ZERO), self.unit_baselines.baseline(hour)
            if not above(spend, tokens, base, self.rule):
                break
            excess += spend - base.center * tokens
        return excess
