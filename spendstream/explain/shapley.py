"""Exact, order-independent attribution: Shapley values of products, and rounding that keeps sums.

A cell's cost is a sum of *terms*, each a product of player values (volume × model share × …
× price). Each player has a baseline value ``a`` and a current value ``b``; the game's worth
of a coalition ``S`` is the cost with the players of ``S`` at ``b`` and the rest at ``a``.
Shapley values are linear in the game, so a cell's attribution is the sum of its terms'; a
player whose value did not change is a dummy (value 0) and is left out of the product.

For one product ``Π x_j`` over ``n`` players, player ``k`` gets::

    (b_k - a_k) · Σ_s  s!(n-1-s)!/n! · e_s,     Π_{j≠k} (a_j + b_j·t) = Σ_s e_s·t^s

— the sum over coalitions grouped by size, in O(n²) instead of 2ⁿ. The values add up to
``Π b - Π a`` exactly in exact arithmetic. Arithmetic here is Decimal at :data:`PRECISION`
digits; :func:`allocate` then rounds totals to the money's places and hands the last units
to the largest remainders, so the rounded parts add up to the rounded whole to the last digit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from decimal import ROUND_FLOOR, Context, Decimal, localcontext
from math import factorial

PRECISION = 60
MONEY_PLACES = Decimal("1e-18")  # the ledger's Decimal(38, 18)
ZERO = Decimal(0)

# WEIGHTS[n][s]: the Shapley weight s!(n-1-s)!/n! of a coalition of s others among n players.
_WEIGHT_CONTEXT = Context(prec=PRECISION)
WEIGHTS: dict[int, tuple[Decimal, ...]] = {
    n: tuple(
        _WEIGHT_CONTEXT.divide(Decimal(factorial(s) * factorial(n - 1 - s)), Decimal(factorial(n)))
        for s in range(n)
    )
    for n in range(1, 16)
}


def precise() -> AbstractContextManager[Context]:
    """A context manager for the arithmetic of a decomposition (:data:`PRECISION` digits)."""
    return localcontext(Context(prec=PRECISION))


def product_shares(factors: Mapping[str, tuple[Decimal, Decimal]]) -> dict[str, Decimal]:
    """Shapley values of the product of ``factors`` (player -> (baseline, current)).

    Players whose two values are equal get nothing and scale the rest; the values add up to
    ``Π current - Π baseline`` (to :data:`PRECISION` digits). Call inside :func:`precise`.
    """
    constant = Decimal(1)
    moving: list[tuple[str, Decimal, Decimal]] = []
    for player, (before, after) in factors.items():
        if before == after:
            constant *= before
        else:
            moving.append((player, before, after))
    if not moving or constant == 0:
        return {}
    # One or two moving players (most terms) in closed form: the very operations of
    # expanded_shares, in its order (adding to a zero start is exact), without its lists.
    if len(moving) == 1:
        player, before, after = moving[0]
        return {player: (after - before) * constant}
    if len(moving) == 2:
        (p0, a0, b0), (p1, a1, b1) = moving
        half = WEIGHTS[2][0]
        return {
            p0: (b0 - a0) * (half * (constant * a1) + half * (constant * b1)),
            p1: (b1 - a1) * (half * (constant * a0) + half * (constant * b0)),
        }
    return expanded_shares(moving, constant)


def expanded_shares(
    moving: list[tuple[str, Decimal, Decimal]], constant: Decimal
) -> dict[str, Decimal]:
    """:func:`product_shares` of the ``moving`` players (player, baseline, current) times
    ``constant``, by expanding each player's polynomial of the others (module doc).

    Player ``k``'s polynomial multiplies ``constant`` by the others' ``(a_j + b_j·t)`` in the
    players' order, so its product over the players before ``k`` is the prefix every later
    player starts from: computed once and shared, the very operations in the very order of
    expanding each player's polynomial alone (half the multiplications at five players)."""
    weights = WEIGHTS[len(moving)]
    shares: dict[str, Decimal] = {}
    prefix = [constant]  # Π_{j<k} (a_j + b_j·t) times the constant
    last = len(moving) - 1
    for index, (player, before, after) in enumerate(moving):
        coefficients = prefix
        for _name, a, b in moving[index + 1 :]:
            coefficients = _times(coefficients, a, b)
        mean = sum((w * e for w, e in zip(weights, coefficients, strict=True)), ZERO)
        shares[player] = (after - before) * mean
        if index < last:
            prefix = _times(prefix, before, after)
    return shares


def _times(coefficients: list[Decimal], a: Decimal, b: Decimal) -> list[Decimal]:
    """The coefficients of ``coefficients`` (a polynomial in t) times ``(a + b·t)``."""
    grown = [ZERO] * (len(coefficients) + 1)
    for power, value in enumerate(coefficients):
        grown[power] += value * a
        grown[power + 1] += value * b
    return grown


def allocate(
    parts: Mapping[str, Decimal], whole: Decimal, places: Decimal = MONEY_PLACES
) -> dict[str, Decimal]:
    """``parts`` rounded to ``places`` so that they add up to ``whole`` (a multiple of
    ``places``) exactly: floor every part, then give the units still missing, one each, to
    the parts with the largest remainders (ties by name, so the result never depends on the
    order of ``parts``). ``parts`` must add up to ``whole`` up to far less than ``places``
    per part; a part is never moved by more than one unit of ``places``."""
    if whole != whole.quantize(places):
        raise ValueError(f"{whole} has more places than {places}")
    with localcontext(Context(prec=PRECISION)):
        floors = {
            name: value.quantize(places, rounding=ROUND_FLOOR) for name, value in parts.items()
        }
        missing = int((whole - sum(floors.values(), ZERO)) / places)
        if abs(missing) > len(parts):
            raise ValueError(f"parts add up to {sum(parts.values(), ZERO)}, not {whole}")
        order = sorted(parts, key=lambda name: (-(parts[name] - floors[name]), name))
        if missing < 0:  # floors overshoot only when the parts' sum overshoots: take back
            order = order[::-1]
        step = places if missing > 0 else -places
        for name in order[: abs(missing)]:
            floors[name] += step
    return floors


def add_into(total: dict[str, Decimal], parts: Iterable[tuple[str, Decimal]]) -> None:
    """Add ``parts`` into ``total`` by name."""
    for name, value in parts:
        total[name] = total.get(name, ZERO) + value
