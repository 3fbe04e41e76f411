"""Scaled-integer pricing (pricing.scaled) gives the Decimal path's money to the last digit.

A large generated corpus (every catalog model and price row, long-context tiers, batch, cache,
reasoning, platforms, overrides absolute and discounted with rates finer than 1e-18, unknown
models, units and cached answers) is priced both ways; hypothesis checks the integer rule on
arbitrary rates and token counts.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from spendstream.events import UsageEvent
from spendstream.pricing import Pricer, Rating, default_pricer
from spendstream.pricing.catalog import Rates
from spendstream.pricing.compiled import PER_MILLION, TokenRates
from spendstream.pricing.costs import _cost
from spendstream.pricing.scaled import (
    ScaledPricer,
    ScaledRate,
    ScaledRating,
    scaled_money,
    to_decimal,
    to_scaled,
)

D = Decimal
COSTS = ("cost_input", "cost_output", "cost_cache_read", "cost_cache_write", "cost_reasoning")
# Prices with more digits than any catalog row: per-token rates finer than 1e-18, so the
# integer path must round half to even exactly where Decimal.quantize does.
FINE = {
    "input": D("0.123456789123"),
    "output": D("7.777777777777"),
    "cache_read": D("0.0123456789"),
    "reasoning": D("3.333333333333333"),
    "batch_discount": D("0.37"),
}


def overridden() -> Pricer:
    return Pricer.from_config(
        {
            "overrides": [
                {"name": "fine", "provider": "openai", "model": "gpt-4o-mini", **FINE},
                {
                    "name": "research",
                    "provider": "anthropic",
                    "model": "*",
                    "discount": D("0.1234567"),
                    "tags": {"team": "research"},
                },
                {
                    "name": "dated",
                    "provider": "openai",
                    "model": "gpt-4o",
                    "discount": D("0.15"),
                    "batch_discount": D("0.6"),
                    "effective_from": datetime(2025, 6, 1, tzinfo=UTC),
                    "effective_until": datetime(2026, 6, 1, tzinfo=UTC),
                },
                {
                    "name": "gpus",
                    "provider": "openai",
                    "model": "*",
                    "unit_prices": {"gpu_hours": {"price": D("2.1"), "per": 3}},
                },
            ]
        }
    )


def assert_same(decimal: Rating, scaled: Rating | ScaledRating, event: UsageEvent) -> None:
    where = event.model_dump_json()
    for name in (*COSTS, "cost_units", "cost_total", "cost_avoided"):
        expected, found = getattr(decimal, name), getattr(scaled, name)
        # equal values and equal Decimals (same digits and exponent), to the last digit
        assert (str(found), found) == (str(expected), expected), (name, where)
    for name in ("priced", "price_ref", "unpriced_reason", "model_key", "units", "placement"):
        assert getattr(scaled, name) == getattr(decimal, name), (name, where)
    assert scaled_money(scaled) == scaled_money(decimal), where
    assert scaled_money(decimal)[6] == to_scaled(decimal.cost_total), where


def tokens(rng: random.Random) -> int:
    choice = rng.random()
    if choice < 0.1:
        return 0
    if choice < 0.2:
        return rng.choice([1, 2, 3, 7, 10**12, 10**12 - 1, 200_000, 200_001, 128_000])
    return rng.randint(1, 10 ** rng.randint(1, 12))


def random_event(rng: random.Random, pricer: Pricer) -> UsageEvent:
    models = pricer.catalog.models
    entry = rng.choice(models)
    row = rng.choice(entry.prices)
    when = row.effective_from + timedelta(seconds=rng.randint(-86_400, 400 * 86_400))
    when = min(max(when, datetime(2020, 1, 1, tzinfo=UTC)), datetime(2099, 1, 1, tzinfo=UTC))
    input_tokens = tokens(rng)
    cache_read = rng.randint(0, input_tokens) if rng.random() < 0.4 else 0
    cache_write = rng.randint(0, input_tokens - cache_read) if rng.random() < 0.3 else 0
    output_tokens = tokens(rng)
    reasoning = rng.randint(0, output_tokens) if rng.random() < 0.4 else 0
    fields: dict[str, Any] = {
        "provider": rng.choice([entry.provider, entry.provider.upper(), "nobody"]),
        "model": rng.choice([entry.model, *entry.aliases, "no-such-model"]),
        "event_time": when,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "reasoning_tokens": reasoning,
        "batch": rng.random() < 0.3,
        "tags": {"team": rng.choice(["research", "search"])},
    }
    if rng.random() < 0.1:
        fields["platform"] = rng.choice(["azure", "bedrock", "vertex"])
        fields["region"] = rng.choice(["eu", "us", "us-gov", None])
    if rng.random() < 0.05:
        fields["units"] = {rng.choice(["gpu_hours", "images", "web_search_calls"]): "1.5"}
    if rng.random() < 0.05:
        fields["response_cached"] = True
    if rng.random() < 0.05:
        fields["response_model"] = rng.choice([entry.model, "gpt-4o-mini"])
    return UsageEvent(**fields)


def test_a_generated_corpus_costs_the_same_to_the_last_digit() -> None:
    rng = random.Random(29)
    scaled_counts = {True: 0, False: 0}
    for pricer in (default_pricer(), overridden()):
        fast = ScaledPricer(pricer)
        for _ in range(20_000):
            event = random_event(rng, pricer)
            scaled = fast.rate(event)
            scaled_counts[isinstance(scaled, ScaledRating)] += 1
            assert_same(pricer.rate(event), scaled, event)
    # the corpus exercises the integer path mostly, the Decimal fallbacks too
    assert scaled_counts[True] > 12_000 and scaled_counts[False] > 5_000


def test_override_rates_finer_than_the_ledger_round_half_to_even() -> None:
    pricer = overridden()
    fast = ScaledPricer(pricer)
    when = datetime(2025, 11, 1, tzinfo=UTC)
    for count in range(0, 5_000, 7):
        event = UsageEvent(
            provider="openai",
            model="gpt-4o-mini",
            event_time=when,
            input_tokens=count * 3,
            cache_read_tokens=count,
            output_tokens=count * 2,
            reasoning_tokens=count,
            batch=count % 2 == 0,
        )
        scaled = fast.rate(event)
        assert isinstance(scaled, ScaledRating)
        assert scaled.price_ref == "openai/gpt-4o-mini+override:fine"
        assert_same(pricer.rate(event), scaled, event)


rates = st.decimals(min_value=0, max_value=100_000, places=15, allow_nan=False)
factors = st.decimals(min_value=0, max_value=1, places=7, allow_nan=False)


@settings(max_examples=600, deadline=None)
@given(rates, factors, st.integers(min_value=0, max_value=10**12))
def test_integer_rule_equals_decimal_quantize(
    per_million: Decimal, factor: Decimal, count: int
) -> None:
    per_token = TokenRates.from_rates(Rates(input=per_million, output=per_million), factor).input
    assert per_token == per_million * factor / PER_MILLION
    scaled = ScaledRate.of(per_token)
    assert scaled is not None
    expected = _cost(count, per_token)
    found = to_decimal(scaled.cost(count))
    assert (str(found), found) == (str(expected), expected)


def test_rates_integers_cannot_reproduce_are_left_to_decimal() -> None:
    assert ScaledRate.of(D("-0.5")) is None
    assert ScaledRate.of(D("0." + "1" * 48)) is None  # tokens x rate could exceed 60 digits
    assert ScaledRate.of(D("1e-30")) == ScaledRate(1, 10**12)
    assert ScaledRate.of(D("2.5e-7")) == ScaledRate(25 * 10**10, 1)
