"""The cost-per-token signal on hand-computed cases: a price change the spend signal cannot
see is caught in its first hour, its dollar excess is the tokens at the usual cost per token,
``min_delta_usd`` gates it, volume alone never trips it, and hours without tokens fall back
to spend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from spendstream.anomalies.config import AnomalyRule
from spendstream.anomalies.signals import GroupWatch, unit_costs

D = Decimal
START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
HOUR = timedelta(hours=1)
AT = START + timedelta(weeks=3, hours=10)
TOKENS = 1_000_000
RATE = D("0.00001")  # USD per token: an hour costs $10


def rule(**fields: Any) -> AnomalyRule:
    return AnomalyRule.model_validate({"name": "r", "min_delta_usd": "1", **fields})


def history(
    volume: dict[int, float] | None = None,
) -> tuple[dict[datetime, D], dict[datetime, int]]:
    """Three weeks of hours at 70 %, 100 % and 130 % of the usual volume (week by week), one
    cost per token."""
    spend, tokens = {}, {}
    hour = START
    while hour < AT:
        index = int((hour - START) / HOUR)
        count = int(TOKENS * (1 + 0.3 * ((index // 168 % 3) - 1)))
        tokens[hour], spend[hour] = count, RATE * count
        hour += HOUR
    return spend, tokens


def watch(r: AnomalyRule, spend_at: D, tokens_at: int) -> GroupWatch:
    spend, tokens = history()
    spend[AT], tokens[AT] = spend_at, tokens_at
    return GroupWatch(spend, tokens, r, START)


def test_a_price_change_is_seen_in_cost_per_token_not_in_spend() -> None:
    # +50 % price on an hour of usual volume: $15 where $10 is usual; spend's spread follows
    # the ±30 % volume swings, so spend alone would need several times that.
    verdict = watch(rule(), RATE * TOKENS * D("1.5"), TOKENS).verdict(AT)
    assert verdict.anomalous and verdict.signal == "unit_cost"
    assert verdict.expected == D(10)  # the same tokens at the usual cost per token
    assert verdict.delta == D(5)
    assert not watch(rule(unit_cost=False), RATE * TOKENS * D("1.5"), TOKENS).verdict(AT).anomalous


def test_the_threshold_is_the_floor_of_the_cost_per_token() -> None:
    # A constant cost per token: spread = 5 % floor; threshold = centre x (1 + 4 x 5 %) = +20 %.
    assert not watch(rule(), D(12), TOKENS).verdict(AT).anomalous  # exactly +20 %: not above
    above = watch(rule(), D("12.01"), TOKENS).verdict(AT)
    assert above.anomalous and above.signal == "unit_cost" and above.threshold == D(12)
    assert not watch(rule(unit_cost_min_spread_pct=10), D("12.01"), TOKENS).verdict(AT).anomalous


def test_min_delta_usd_gates_the_unit_cost_excess() -> None:
    assert not watch(rule(min_delta_usd="6"), D(15), TOKENS).verdict(AT).anomalous  # +$5
    assert watch(rule(min_delta_usd="5"), D(15), TOKENS).verdict(AT).anomalous


def test_volume_alone_moves_spend_not_cost_per_token() -> None:
    burst = watch(rule(), RATE * TOKENS * 5, TOKENS * 5).verdict(AT)
    assert burst.anomalous and burst.signal == "spend"  # the volume burst, on spend
    assert burst.expected == D(10)


def test_hours_without_tokens_are_judged_on_spend_alone() -> None:
    assert unit_costs({AT: D(3)}, {AT: 0}) == {}
    verdict = watch(rule(), D(11), 0).verdict(AT)
    assert verdict.signal == "spend" and not verdict.anomalous


def test_a_run_of_small_hours_above_adds_up_against_min_delta_usd() -> None:
    # A quiet hour's price change worth $2.50 under a $4 floor: alone it never pages; in its
    # second hour the run carries $5 and pages; one noisy hour before a usual one carries none.
    spend, tokens = history()
    small = D("12.5")  # +25 % on a usual hour: above the +20 % threshold, $2.50 of excess
    spend[AT - HOUR], tokens[AT - HOUR] = small, TOKENS
    spend[AT], tokens[AT] = small, TOKENS
    floor = rule(min_delta_usd="4")
    first = GroupWatch(spend, tokens, floor, START).verdict(AT - HOUR)
    assert not first.anomalous and first.delta == D("2.5")
    second = GroupWatch(spend, tokens, floor, START).verdict(AT)
    assert second.anomalous and second.signal == "unit_cost" and second.delta == D("2.5")
    assert GroupWatch(spend, tokens, floor, START).carried(AT) == D("2.5")
    spend[AT - HOUR] = RATE * TOKENS  # the hour before was usual: nothing carried
    assert not GroupWatch(spend, tokens, floor, START).verdict(AT).anomalous
    spend[AT - HOUR] = small
    assert not GroupWatch(spend, tokens, rule(min_delta_usd="5.01"), START).verdict(AT).anomalous
    # Runs are RUN_HOURS long: a third hour carries only the one before it.
    spend[AT - 2 * HOUR], tokens[AT - 2 * HOUR] = small, TOKENS
    assert GroupWatch(spend, tokens, floor, START).carried(AT) == D("2.5")
