"""The two signals an anomaly rule watches per group, and the verdict on one hour. Pure.

- **spend** per hour against its seasonal baseline (:mod:`spendstream.anomalies.baseline`):
  volume bursts, prompt growth, runaway users, new traffic;
- **cost per token** (spend ÷ input and output tokens) against its own seasonal baseline: a
  price change or a cache that stops hitting moves it at once and by the whole change, while
  the hour-to-hour noise of volume, which hides such a change in spend for hours, cancels
  out of the ratio. Its dollar excess is the hour's spend minus the same tokens at the usual
  cost per token; ``min_delta_usd`` gates it as it gates spend. Hours without tokens (usage
  units only) have no cost per token and are judged on spend alone.

The hour is anomalous when either signal is; the verdict kept is the one with the larger
excess (spend when neither is anomalous).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
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


def unit_costs(spend: Mapping[datetime, Decimal], tokens: Tokens) -> dict[datetime, Decimal]:
    """Cost per token of every hour with tokens."""
    return {at: spend.get(at, ZERO) / count for at, count in tokens.items() if count > 0}


def judge_unit_cost(
    spend: Decimal, tokens: int, base: Baseline, rule: AnomalyRule, at: datetime
) -> Verdict:
    """Anomalous: the cost per token above ``centre + sensitivity × spread`` (widened while
    daily) and the hour's spend at least ``min_delta_usd`` above its tokens at the centre."""
    widening = DAILY_WIDENING if base.method == "daily" else Decimal(1)
    threshold = (base.center + rule.sensitivity * widening * base.spread) * tokens
    anomalous = (
        base.method != "learning"
        and tokens > 0
        and spend > threshold
        and spend - base.center * tokens >= rule.min_delta_usd
    )
    return Verdict(at, spend, base, threshold, anomalous, "unit_cost", tokens)


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
        by_unit = judge_unit_cost(spend, tokens, self.unit_baselines.baseline(at), self.rule, at)
        anomalous = [v for v in (by_spend, by_unit) if v.anomalous]
        return max(anomalous, key=lambda v: v.delta) if anomalous else by_spend
