"""Explain's shortcuts for speed (docs/benchmarks-explain.md, session 9) leave every figure as it
was: the Shapley expansion sharing its prefixes gives the very Decimals (to the last digit and
exponent) of expanding each player alone; a period with no whole day reads no day rollup; the
ranking by hashes counts no groups with a window (fewer rows than asked tell it all)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from spendstream.explain import Scope
from spendstream.explain.cells import cells_sql
from spendstream.explain.lumping import ranking_sql
from spendstream.explain.shapley import WEIGHTS, ZERO, expanded_shares, precise
from spendstream.sinks.migrations import DRIVER_TABLES, ROLLUP_TABLES
from tests.test_explain_math import driver_value

NOW = datetime(2026, 12, 7, 12, 24, 1, tzinfo=UTC)


def each_player_alone(
    moving: list[tuple[str, Decimal, Decimal]], constant: Decimal
) -> dict[str, Decimal]:
    """The expansion as written before the prefixes were shared: each player's polynomial of
    the others built from the constant, one player after the other."""
    weights = WEIGHTS[len(moving)]
    shares: dict[str, Decimal] = {}
    for index, (player, before, after) in enumerate(moving):
        coefficients = [constant]
        for other, (_name, a, b) in enumerate(moving):
            if other == index:
                continue
            grown = [ZERO] * (len(coefficients) + 1)
            for power, value in enumerate(coefficients):
                grown[power] += value * a
                grown[power + 1] += value * b
            coefficients = grown
        mean = sum((w * e for w, e in zip(weights, coefficients, strict=True)), ZERO)
        shares[player] = (after - before) * mean
    return shares


def test_shared_prefixes_give_the_very_decimals_of_each_player_alone() -> None:
    rng = random.Random(9)

    def value() -> Decimal:  # zero too: a period without cache reads, say
        return Decimal(0) if rng.randrange(5) == 0 else driver_value(rng)

    with precise():
        for _ in range(1500):
            count = rng.randrange(3, 8)
            moving = [(f"m{i}", value(), value()) for i in range(count)]
            constant = value() or Decimal(1)
            got = expanded_shares(moving, constant)
            expected = each_player_alone(moving, constant)
            assert list(got) == list(expected)
            assert [repr(v) for v in got.values()] == [repr(v) for v in expected.values()]


def test_a_period_without_a_whole_day_reads_no_day_rollup() -> None:
    day = DRIVER_TABLES["day"]
    last_day = (NOW - timedelta(hours=24), NOW)
    sql, _params = cells_sql(Scope(), *last_day)
    assert f" {day} FINAL" not in sql and f" {DRIVER_TABLES['hour']} FINAL" in sql
    week = (NOW - timedelta(days=7), NOW)
    assert f" {day} FINAL" in cells_sql(Scope(), *week)[0]
    # the ranking: per period, the week keeps its whole days, the last 24 h reads none
    ranking, _params = ranking_sql(Scope(), week, last_day, 300, values=False)
    days = [side for side in ranking.split(" UNION ALL ") if f" {ROLLUP_TABLES['day']} " in side]
    assert len(days) == 1 and "{a_d0:" in days[0]


def test_ranking_by_hashes_counts_no_groups_in_a_window() -> None:
    period = (NOW - timedelta(hours=24), NOW)
    baseline = (period[0] - timedelta(days=7), period[1] - timedelta(days=7))
    by_hashes, _params = ranking_sql(Scope(), period, baseline, 301, values=False)
    assert " OVER " not in by_hashes
    by_values, _params = ranking_sql(Scope(), period, baseline, 300)
    assert "count() OVER () AS groups" in by_values
