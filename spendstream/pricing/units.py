"""Usage-unit pricing: an event's ``units`` (images, audio, search calls, ...) -> exact cost.

Rule for one unit ``name`` with quantity ``q > 0`` (a quantity of 0 costs nothing, needs no price):

1. Candidates, most specific first: the name, then the name minus its last variant segment, and so
   on (``images.1024x1024.hd``, ``images.1024x1024``, ``images``).
2. Sources, first that prices a candidate wins: the overrides matching the event (most specific
   first, in force, tags matching): their ``unit_prices``, or for a discount override the catalog
   price scaled by ``1 - discount``; then the catalog entry of the model; then the provider's
   ``"*"`` entry. A catalog entry uses its row in force at ``event_time`` (effective dating as for
   tokens).
3. ``cost = q x price / per``, quantized once to 1e-18 USD. No source: the event is unpriced and
   the reason names the unit (never a silent $0).

Batch discounts apply to tokens only.
"""

from __future__ import annotations

import functools
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from spendstream.pricing.catalog import Catalog, UnitRate
from spendstream.pricing.compiled import EXACT, ONE, OverridePlan

COST_QUANTUM = Decimal("1e-18")  # ledger columns are Decimal(38, 18)
# A unit cost above this is a wrong quantity or price, not a bill: the event is unpriced instead,
# so no event can bring a rollup sum near Decimal(38, 18)'s 10^20 limit (tokens stay < 10^12).
MAX_UNIT_COST = Decimal(10**12)


@dataclass(frozen=True, slots=True)
class UnitCost:
    """The cost of one unit of an event, and the price it used (``provider/model@date`` of a
    catalog row, ``...+override:NAME`` for an override)."""

    unit: str
    quantity: Decimal
    cost: Decimal
    price_ref: str


@dataclass(frozen=True, slots=True)
class CompiledUnits:
    """One catalog ``[[units]]`` entry for one model, ready for :meth:`at`."""

    key: str  # provider/model or provider/*
    starts: tuple[datetime, ...]
    rows: tuple[Mapping[str, UnitRate], ...]
    refs: tuple[str, ...]  # key@effective_from date, per row

    def at(self, when: datetime) -> tuple[str, Mapping[str, UnitRate]] | None:
        """(ref, rates) of the row in force at ``when``, or None before the first row."""
        index = bisect_right(self.starts, when) - 1
        if index < 0:
            return None
        return self.refs[index], self.rows[index]


class UnitIndex:
    """The catalog's unit entries by (provider, model name)."""

    def __init__(self, catalog: Catalog) -> None:
        self._entries: dict[tuple[str, str], CompiledUnits] = {}
        for entry in catalog.units:
            starts = tuple(row.effective_from for row in entry.prices)
            rows = tuple(row.rates for row in entry.prices)
            for model in entry.models:
                key = f"{entry.provider}/{model}"
                refs = tuple(f"{key}@{start.date().isoformat()}" for start in starts)
                self._entries[(entry.provider, model)] = CompiledUnits(key, starts, rows, refs)

    def has_model(self, provider: str | None, names: Iterable[str]) -> bool:
        """True when one of ``names`` has its own entry (not only the provider's ``"*"``)."""
        return any((provider, name) in self._entries for name in names if name != "*")

    def lookup(self, provider: str | None, names: Iterable[str]) -> tuple[CompiledUnits, ...]:
        """The entries for a catalog ``provider`` and the first of ``names`` that has one, then
        the provider's ``"*"`` entry."""
        if provider is None:
            return ()
        found: list[CompiledUnits] = []
        for name in names:
            entry = self._entries.get((provider, name))
            if entry is not None:
                found.append(entry)
                break
        wildcard = self._entries.get((provider, "*"))
        return (*found, wildcard) if wildcard else tuple(found)


@functools.lru_cache(maxsize=4096)
def unit_candidates(name: str) -> tuple[str, ...]:
    """``name`` and each less specific variant of it, most specific first."""
    parts = name.split(".")
    return tuple(".".join(parts[:size]) for size in range(len(parts), 0, -1))


def unit_cost(quantity: Decimal, rate: UnitRate, factor: Decimal = ONE) -> Decimal:
    """``quantity x price x factor / per``, quantized once to 1e-18 USD."""
    amount = EXACT.multiply(quantity, rate.price)
    if factor != ONE:
        amount = EXACT.multiply(amount, factor)
    if rate.per != ONE:
        amount = EXACT.divide(amount, rate.per)
    return amount.quantize(COST_QUANTUM, context=EXACT)


def _from_catalog(
    entries: Sequence[CompiledUnits], candidates: Sequence[str], when: datetime
) -> tuple[str, UnitRate] | None:
    for entry in entries:
        found = entry.at(when)
        if found is None:
            continue
        ref, rates = found
        for candidate in candidates:
            if candidate in rates:
                return ref, rates[candidate]
    return None


def rate_units(
    units: Mapping[str, Decimal],
    *,
    when: datetime,
    tags: dict[str, str],
    model_key: str,
    plans: Sequence[OverridePlan],
    entries: Sequence[CompiledUnits],
) -> tuple[tuple[UnitCost, ...], str]:
    """The cost of every unit of an event (sorted by unit name), and the unpriced reason
    (``""`` when every unit with a non-zero quantity has a price)."""
    costs: list[UnitCost] = []
    missing: list[str] = []
    applicable = [
        plan.override
        for plan in plans
        if plan.override.in_force(when) and plan.override.tags_match(tags)
    ]  # usually empty: no override for this model
    for unit in sorted(units):
        quantity = units[unit]
        if not quantity:
            continue
        candidates = unit_candidates(unit)
        priced: tuple[str, UnitRate, Decimal] | None = None
        for override in applicable:
            own = next((c for c in candidates if c in override.unit_prices), None)
            if own is not None:
                ref = f"{model_key}+override:{override.name}"
                priced = (ref, override.unit_prices[own], ONE)
                break
            if override.discount is not None:
                listed = _from_catalog(entries, candidates, when)
                if listed is not None:
                    ref = f"{listed[0]}+override:{override.name}"
                    priced = (ref, listed[1], ONE - override.discount)
                    break
        if priced is None:
            listed = _from_catalog(entries, candidates, when)
            if listed is not None:
                priced = (listed[0], listed[1], ONE)
        if priced is None:
            missing.append(unit)
            continue
        ref, rate, factor = priced
        cost = unit_cost(quantity, rate, factor)
        if cost > MAX_UNIT_COST:
            return (), (
                f"unit {unit!r} of {model_key} would cost {cost:.2f} USD (over {MAX_UNIT_COST:,} "
                "USD): check its quantity and price"
            )
        costs.append(UnitCost(unit, quantity, cost, ref))
    if missing:
        names = ", ".join(repr(name) for name in missing)
        return (), (
            f"no price for unit {names} of {model_key} at {when.isoformat()} (add a catalog "
            "[[units]] entry or a [pricing] override with unit_prices)"
        )
    return tuple(costs), ""
