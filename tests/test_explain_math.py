"""Explain's decomposition on hand-computed cases: each driver alone, several together, one
cancelling another; the parts always add up to the delta to the last digit."""

from __future__ import annotations

import random
from dataclasses import replace
from decimal import Decimal

import pytest

from spendstream.explain.cells import CellKey, Measures
from spendstream.explain.decompose import decompose
from spendstream.explain.report import drivers_of
from spendstream.explain.shapley import allocate, expanded_shares, precise, product_shares

D = Decimal


def cell(
    requests: int,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_read: int = 0,
    p_in: str = "0.000003",
    p_cache: str = "0.0000003",
    p_out: str = "0.000015",
    units: dict[str, tuple[str, str]] | None = None,
) -> Measures:
    """A cell whose costs are its tokens at the given prices (units: name -> (qty, price))."""
    uncached = D(input_tokens - cache_read) * D(p_in)
    cached = D(cache_read) * D(p_cache)
    output = D(output_tokens) * D(p_out)
    quantities = {name: D(q) for name, (q, _p) in (units or {}).items()}
    costs = {name: D(q) * D(p) for name, (q, p) in (units or {}).items()}
    return Measures(
        requests,
        input_tokens,
        output_tokens,
        cache_read,
        uncached,
        cached,
        output,
        uncached + cached + output + sum(costs.values(), D(0)),
        quantities,
        costs,
    )


def key(
    model: str = "m-small", batch: bool = False, user: str = "u1", feature: str = "chat"
) -> CellKey:
    return ("search", "web", "prod", feature, user, "openai", model, batch)


def drivers(before: dict[CellKey, Measures], after: dict[CellKey, Measures]) -> dict[str, D]:
    changes = decompose(before, after)
    found = {d.name: d.amount for d in drivers_of(changes)}
    delta = sum((c.cost_total for c in after.values()), D(0)) - sum(
        (c.cost_total for c in before.values()), D(0)
    )
    assert sum(found.values(), D(0)) == delta  # to the last digit, always
    return found


def test_volume_alone() -> None:
    found = drivers({key(): cell(10, 1000, 200)}, {key(): cell(30, 3000, 600)})
    # 10 requests costing 0.006 (1000·3e-6 + 200·15e-6) -> 30 alike: +0.012, all volume
    assert found == {"volume": D("0.012")}


def test_input_tokens_per_request_alone() -> None:
    found = drivers({key(): cell(10, 1000, 0)}, {key(): cell(10, 2900, 0)})
    assert found == {"input_per_request": D("0.0057")}  # 1900 more input tokens at 3e-6


def test_output_tokens_per_request_alone() -> None:
    found = drivers({key(): cell(10, 0, 100)}, {key(): cell(10, 0, 400)})
    assert found == {"output_per_request": D("0.0045")}


def test_cache_stops_hitting_is_cache_share() -> None:
    # 1000 input tokens, 800 read from cache -> none: 800 tokens move from 3e-7 to 3e-6
    found = drivers({key(): cell(1, 1000, 0, 800)}, {key(): cell(1, 1000, 0, 0)})
    assert found == {"cache_share": D("0.00216")}


def test_batch_share_alone() -> None:
    # Half the requests on batch (half price) -> none on batch.
    before = {key(): cell(5, 500, 0), key(batch=True): cell(5, 500, 0, p_in="0.0000015")}
    after = {key(): cell(10, 1000, 0)}
    assert drivers(before, after) == {"batch_share": D("0.00075")}


def test_swap_to_a_pricier_model_is_model_mix() -> None:
    before = {key("m-small"): cell(10, 1000, 0)}
    after = {key("m-large"): cell(10, 1000, 0, p_in="0.000015")}
    assert drivers(before, after) == {"model_mix": D("0.012")}


def test_price_change_alone() -> None:
    found = drivers({key(): cell(10, 1000, 100)}, {key(): cell(10, 1000, 100, p_in="0.000006")})
    assert found == {"price": D("0.003")}


def test_units_alone() -> None:
    before = {key(): cell(10, units={"image": ("10", "0.04")})}
    after = {key(): cell(10, units={"image": ("25", "0.04")})}
    assert drivers(before, after) == {"units": D("0.6")}


def test_new_and_vanished_traffic() -> None:
    before = {key(user="u1"): cell(10, 1000, 0), key(user="gone"): cell(1, 100, 0)}
    after = {key(user="u1"): cell(10, 1000, 0), key(user="u-77"): cell(4, 1000, 0)}
    assert drivers(before, after) == {"new_traffic": D("0.003"), "vanished_traffic": D("-0.0003")}


def test_volume_and_price_together_split_as_shapley() -> None:
    # cost = R·p: R 10 -> 20, p 0.001 -> 0.0015 per request (all input, 1000 tokens at 1e-6).
    before = {key(): cell(10, 10_000, 0, p_in="0.000001")}
    after = {key(): cell(20, 20_000, 0, p_in="0.0000015")}
    # volume = ½[(20-10)·0.001 + (20-10)·0.0015] = 0.0125; price = ½[10·0.0005 + 20·0.0005]
    assert drivers(before, after) == {"volume": D("0.0125"), "price": D("0.0075")}


def test_a_driver_cancelling_another() -> None:
    before = {key(): cell(10, 10_000, 0, p_in="0.000002")}
    after = {key(): cell(20, 20_000, 0, p_in="0.000001")}
    # delta 0: volume ½[10·0.002 + 10·0.001] = +0.015, price ½[10·-0.001 + 20·-0.001] = -0.015
    assert drivers(before, after) == {"volume": D("0.015"), "price": D("-0.015")}


def test_all_drivers_together_add_up_exactly_in_any_order() -> None:
    rng = random.Random(7)

    def random_cell() -> Measures:
        inputs = rng.randint(0, 50_000)
        return cell(
            rng.randint(1, 500),
            inputs,
            rng.randint(0, 9_000),
            rng.randint(0, inputs),
            p_in=f"0.00000{rng.randint(1, 9)}{rng.randint(1, 9)}7",
            p_cache=f"0.000000{rng.randint(1, 9)}3",
            p_out=f"0.0000{rng.randint(1, 9)}1",
            units={"search": (str(rng.randint(0, 9)), "0.0123")} if rng.random() < 0.3 else None,
        )

    keys = [
        key(model, batch, user, feature)
        for model in ("a", "b")
        for batch in (False, True)
        for user in ("u1", "u2", "u3")
        for feature in ("f1", "f2")
    ]
    before = {k: random_cell() for k in keys if rng.random() < 0.7}
    after = {k: random_cell() for k in keys if rng.random() < 0.7}
    found = drivers(before, after)
    assert {
        "model_mix",
        "batch_share",
        "input_per_request",
        "output_per_request",
        "cache_share",
        "price",
        "volume",
    } <= set(found)
    shuffled_before = dict(rng.sample(list(before.items()), len(before)))
    shuffled_after = dict(rng.sample(list(after.items()), len(after)))
    assert drivers(shuffled_before, shuffled_after) == found


def test_product_shares_match_enumeration() -> None:
    factors = {"a": (D(2), D(5)), "b": (D(3), D(1)), "c": (D(7), D(11)), "d": (D(4), D(4))}
    with precise():
        shares = product_shares(factors)
    # Brute force over the 3! orders of the moving players.
    from itertools import permutations

    moving = ["a", "b", "c"]
    expected = dict.fromkeys(moving, D(0))
    for order in permutations(moving):
        state = {name: pair[0] for name, pair in factors.items()}
        for name in order:
            before = state["a"] * state["b"] * state["c"] * state["d"]
            state[name] = factors[name][1]
            expected[name] += (state["a"] * state["b"] * state["c"] * state["d"] - before) / 6
    assert {k: round(v, 20) for k, v in shares.items()} == {
        k: round(v, 20) for k, v in expected.items()
    }


def test_allocate_keeps_the_whole_and_refuses_parts_that_do_not_add_up() -> None:
    parts = {"x": D(1) / 3, "y": D(1) / 3, "z": D(1) / 3}
    assert sum(allocate(parts, D(1)).values()) == D(1)
    with pytest.raises(ValueError):
        allocate({"x": D(1)}, D(2))


def test_lumping_small_users_keeps_totals_and_the_users_that_moved() -> None:
    from spendstream.explain.cells import OTHER_USERS, lump_users

    before = {key(user=f"u{i}"): cell(10, 1000, 100) for i in range(50)}
    after = {key(user=f"u{i}"): cell(11, 1100, 100) for i in range(50)}
    after[key(user="u-77")] = cell(500, 90_000, 100)
    small_before, small_after = lump_users(before, after, keep=3)
    assert len(small_after) == 4 and key(user="u-77") in small_after
    assert key(user=OTHER_USERS) in small_before
    for full, small in ((before, small_before), (after, small_after)):
        assert sum((c.cost_total for c in small.values()), D(0)) == sum(
            (c.cost_total for c in full.values()), D(0)
        )
    found = drivers(small_before, small_after)
    assert found["new_traffic"] == after[key(user="u-77")].cost_total


def driver_value(rng: random.Random) -> Decimal:
    """A random driver value of the kinds a decomposition meets (tests.test_explain_shortcuts)."""
    kind = rng.randrange(4)
    if kind == 0:
        return Decimal(rng.randrange(1, 10**6))
    if kind == 1:  # an inexact ratio at full precision, as per_request's
        return Decimal(rng.randrange(1, 10**12)) / Decimal(rng.randrange(1, 10**9))
    if kind == 2:  # a ledger amount, Decimal(38, 18)
        return Decimal(rng.randrange(-(10**20), 10**20)).scaleb(-18)
    return 1 - Decimal(rng.randrange(1, 10**9)) / Decimal(rng.randrange(10**9, 10**10))


def test_closed_forms_for_one_and_two_moving_players_equal_the_expansion_exactly() -> None:
    """product_shares' shortcuts for one and two moving players (most terms) give the very
    values of the general expansion, to all PRECISION digits, not merely close ones."""
    rng = random.Random(26)

    def value() -> Decimal:
        return driver_value(rng)

    checked = 0
    with precise():
        for _ in range(3000):
            moving_count, fixed_count = rng.randrange(1, 3), rng.randrange(0, 4)
            factors = {f"m{i}": (value(), value()) for i in range(moving_count)}
            factors |= {f"f{i}": (same, same) for i in range(fixed_count) for same in [value()]}
            moving = [(name, a, b) for name, (a, b) in factors.items() if a != b]
            constant = Decimal(1)
            for a, b in factors.values():
                if a == b:
                    constant *= a
            shortcut = product_shares(factors)
            assert shortcut == expanded_shares(moving, constant)
            assert list(shortcut) == [name for name, _a, _b in moving]
            checked += 1
    assert checked == 3000


def test_calls_answered_from_the_response_cache_are_their_own_driver() -> None:
    # 10 paid calls of 1000 input tokens (0.003 each) -> 10 calls, 5 answered by the app's own
    # cache (cost 0, their tokens not paid): -0.015, all response-cache share, no price change.
    before = {key(): cell(10, 10_000, 0)}
    after = {key(): replace(cell(10, 5_000, 0), cached_requests=5)}
    assert drivers(before, after) == {"response_cache_share": D("-0.015")}
    # Volume doubling while the cached share goes 0 -> 50 %: cost = R·c·0.003 stays 0.03.
    # volume = ½[(20-10)·1 + (20-10)·0.5]·0.003 = 0.0225; cache = ½[10·(-0.5) + 20·(-0.5)]·0.003
    doubled = {key(): replace(cell(20, 10_000, 0), cached_requests=10)}
    assert drivers(before, doubled) == {
        "volume": D("0.0225"),
        "response_cache_share": D("-0.0225"),
    }
