"""The delta of each cell decomposed into drivers whose parts add up to it (docs/explain.md).

A group is a combination of tags (team, app, env, feature, user); its cells split it by model
and batch flag. For a group present in both periods, a cell's cost is written as a sum of
products of driver values::

    uncached input  R · s · β · c · i · (1-k) · p_in
    cache reads     R · s · β · c · i ·  k    · p_cache
    output          R · s · β · c · o         · p_out
    each unit u     R · s · β · c · q_u       · p_u
    the rest        R · s · β · c             · f        (a cost with no quantity: rare)

R the group's requests (volume), s the model's share of them (model mix), β the cell's share
of the model's requests (batch share), c the share of requests paid for (not answered from the
app's own response cache: those cost 0), i and o the input and output tokens per paid request, k the
cache-read share of input, p the unit prices actually paid (cost / quantity: catalog,
override or re-rating), q_u a unit's quantity per request. Each product equals the ledger's
cost component exactly, so the products add up to the cell's cost in both periods; the
Shapley values of the drivers (:mod:`spendstream.explain.shapley`) add up to the cell's delta.
A value undefined in one period (no cache reads, a model the group did not use) takes the
other period's value, so it moves nothing and the whole change goes to the driver that
brought the quantity in or out. A group in one period only is new or vanished traffic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from spendstream.explain.cells import GROUP_DIMENSIONS, ZERO, CellKey, Measures
from spendstream.explain.shapley import add_into, precise, product_shares

VOLUME, MIX, BATCH = "volume", "model_mix", "batch_share"
INPUT, OUTPUT, CACHE = "input_per_request", "output_per_request", "cache_share"
PRICE, UNITS, NEW, VANISHED = "price", "units", "new_traffic", "vanished_traffic"
RESPONSE_CACHE = "response_cache_share"
DRIVERS = (VOLUME, MIX, INPUT, OUTPUT, CACHE, RESPONSE_CACHE, BATCH, PRICE, UNITS, NEW, VANISHED)
DRIVER_LABELS = {
    VOLUME: "volume (requests)",
    MIX: "model mix",
    INPUT: "input tokens per request",
    OUTPUT: "output tokens per request",
    CACHE: "cache-read share of input",
    RESPONSE_CACHE: "response-cache share of requests",
    BATCH: "batch share",
    PRICE: "unit prices",
    UNITS: "non-token units",
    NEW: "new traffic",
    VANISHED: "vanished traffic",
}
GroupKey = tuple[str, ...]
ModelKey = tuple[str, ...]  # group + (provider, model)
Values = dict[str, Decimal]  # a cell's driver values in one period


@dataclass(frozen=True)
class CellChange:
    """One cell's costs in both periods and its delta split by driver (unrounded)."""

    key: CellKey
    before: Measures | None
    after: Measures | None
    parts: dict[str, Decimal]

    @property
    def delta(self) -> Decimal:
        return _cost(self.after) - _cost(self.before)


def _cost(measures: Measures | None) -> Decimal:
    return measures.cost_total if measures else ZERO


def group_of(key: CellKey) -> GroupKey:
    return tuple(str(v) for v in key[: len(GROUP_DIMENSIONS)])


def model_of(key: CellKey) -> ModelKey:
    return tuple(str(v) for v in key[: len(GROUP_DIMENSIONS) + 2])


def _ratio(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    return numerator / denominator if denominator else None


def per_request(cell: Measures) -> dict[str, Decimal | None]:
    """A cell's intensive values (None where undefined) and what no quantity prices: ``c`` the
    share of requests that were paid (not answered from the app's response cache), the other
    values per paid request."""
    paid = Decimal(cell.requests - cell.cached_requests)
    requests = paid
    inputs, outputs = Decimal(cell.input_tokens), Decimal(cell.output_tokens)
    cached = Decimal(cell.cache_read_tokens)
    values: dict[str, Decimal | None] = {
        "c": _ratio(paid, Decimal(cell.requests)),
        "i": _ratio(inputs, requests),
        "o": _ratio(outputs, requests),
        "k": _ratio(cached, inputs),
        "p_in": _ratio(cell.cost_uncached, inputs - cached),
        "p_cache": _ratio(cell.cost_cache_read, cached),
        "p_out": _ratio(cell.cost_output, outputs),
    }
    priced = sum(
        (
            cost
            for cost, quantity in (
                (cell.cost_uncached, inputs - cached),
                (cell.cost_cache_read, cached),
                (cell.cost_output, outputs),
            )
            if quantity
        ),
        ZERO,
    )
    for unit, quantity in cell.unit_quantities.items():
        cost = cell.unit_costs.get(unit, ZERO)
        values[f"q:{unit}"] = _ratio(quantity, requests)
        values[f"p:{unit}"] = _ratio(cost, quantity)
        if quantity:
            priced += cost
    values["f"] = _ratio(cell.cost_total - priced, requests)
    return values


def _pair(
    before: Mapping[str, Decimal | None], after: Mapping[str, Decimal | None], name: str
) -> tuple[Decimal, Decimal]:
    """(baseline, current) of ``name``; an undefined side takes the other's value."""
    a, b = before.get(name), after.get(name)
    if a is None:
        a = b
    if b is None:
        b = a
    return (a if a is not None else ZERO), (b if b is not None else ZERO)


def cell_parts(
    shares: tuple[tuple[Decimal, Decimal], ...],
    before: Measures | None,
    after: Measures | None,
) -> dict[str, Decimal]:
    """The Shapley split of one cell's delta, given (baseline, current) of volume, model share
    and batch share. Call inside :func:`shapley.precise`."""
    volume, mix, batch = shares
    old = per_request(before) if before else {}
    new = per_request(after) if after else {}
    common = {VOLUME: volume, MIX: mix, BATCH: batch, RESPONSE_CACHE: _pair(old, new, "c")}
    i, k = _pair(old, new, "i"), _pair(old, new, "k")
    terms: list[dict[str, tuple[Decimal, Decimal]]] = [
        {**common, INPUT: i, CACHE: (1 - k[0], 1 - k[1]), PRICE: _pair(old, new, "p_in")},
        {**common, INPUT: i, CACHE: k, PRICE: _pair(old, new, "p_cache")},
        {**common, OUTPUT: _pair(old, new, "o"), PRICE: _pair(old, new, "p_out")},
        {**common, PRICE: _pair(old, new, "f")},
    ]
    units = {name[2:] for name in (*old, *new) if name.startswith("q:")}
    for unit in sorted(units):
        # A cell without a unit in a period used none of it (a quantity of 0, not unknown).
        if before is not None:
            old.setdefault(f"q:{unit}", ZERO)
        if after is not None:
            new.setdefault(f"q:{unit}", ZERO)
        terms.append(
            {**common, UNITS: _pair(old, new, f"q:{unit}"), PRICE: _pair(old, new, f"p:{unit}")}
        )
    parts: dict[str, Decimal] = {}
    for term in terms:
        add_into(parts, product_shares(term).items())
    return parts


def decompose(
    before: Mapping[CellKey, Measures], after: Mapping[CellKey, Measures]
) -> list[CellChange]:
    """Every cell of either period with its delta split by driver (unrounded, high precision:
    round totals with :func:`shapley.allocate`)."""
    # Each key's group and model, worked out once (they are looked up several times).
    places = {key: (group_of(key), model_of(key)) for key in (*before, *after)}
    group_requests: dict[str, dict[GroupKey, int]] = {"before": {}, "after": {}}
    model_requests: dict[str, dict[ModelKey, int]] = {"before": {}, "after": {}}
    for side, cells in (("before", before), ("after", after)):
        groups, models = group_requests[side], model_requests[side]
        for key, cell in cells.items():
            group, model = places[key]
            groups[group] = groups.get(group, 0) + cell.requests
            models[model] = models.get(model, 0) + cell.requests
    changes: list[CellChange] = []
    with precise():
        for key in sorted(places):
            old, new = before.get(key), after.get(key)
            group, model = places[key]
            r0 = group_requests["before"].get(group, 0)
            r1 = group_requests["after"].get(group, 0)
            if not r0 or not r1:  # the group exists in one period only
                driver, cost = (NEW, _cost(new)) if r1 else (VANISHED, -_cost(old))
                changes.append(CellChange(key, old, new, {driver: cost} if cost else {}))
                continue
            m0 = model_requests["before"].get(model, 0)
            m1 = model_requests["after"].get(model, 0)
            c0, c1 = (old.requests if old else 0), (new.requests if new else 0)
            mix = _shares(m0, r0, m1, r1)
            batch = _shares(c0, m0, c1, m1)
            volume = (Decimal(r0), Decimal(r1))
            changes.append(CellChange(key, old, new, cell_parts((volume, mix, batch), old, new)))
    return changes


def _shares(part0: int, whole0: int, part1: int, whole1: int) -> tuple[Decimal, Decimal]:
    """(baseline, current) of ``part / whole``; an empty whole takes the other period's share."""
    s0 = Decimal(part0) / whole0 if whole0 else None
    s1 = Decimal(part1) / whole1 if whole1 else None
    a = s0 if s0 is not None else s1
    b = s1 if s1 is not None else s0
    return (a or ZERO), (b or ZERO)
