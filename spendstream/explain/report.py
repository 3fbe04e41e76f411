"""From cell changes to what a person reads: driver totals, the contributors tree, highlights.

Every amount is rounded to the ledger's places with :func:`shapley.allocate`, so the drivers of
the whole add up to the delta exactly, and each contributor's drivers to its own delta.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

from spendstream.explain.cells import GROUP_DIMENSIONS, ZERO
from spendstream.explain.decompose import DRIVER_LABELS, DRIVERS, NEW, VANISHED, CellChange
from spendstream.explain.shapley import MONEY_PLACES, add_into, allocate, precise
from spendstream.sinks.migrations import DRIVER_DIMENSIONS

TREE_LEVELS = ("team", "app", "feature", "user", "model")
LEVEL_INDEX = {name: DRIVER_DIMENSIONS.index(name) for name in TREE_LEVELS}
MIN_SHARE = Decimal("0.05")  # contributors and highlights under 5 % of the delta are pruned
MAX_CHILDREN = 5
DESCEND_SHARE = Decimal("0.6")  # a highlight narrows to a child holding 60 % of its amount
Path = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Driver:
    name: str
    amount: Decimal
    share: Decimal | None  # of the delta; None when the delta is zero

    @property
    def label(self) -> str:
        return DRIVER_LABELS[self.name]


@dataclass(frozen=True)
class Contributor:
    """Where part of the delta lives: ``path`` (dimension, value) from the top, its spend in
    both periods, its share of the whole delta and its own drivers (adding up to its delta)."""

    path: Path
    before: Decimal
    after: Decimal
    share: Decimal | None
    drivers: list[Driver]
    children: list[Contributor] = field(default_factory=list)

    @property
    def delta(self) -> Decimal:
        return self.after - self.before


@dataclass(frozen=True)
class Highlight:
    """One driver at one place, for the sentence: ``path`` where most of it lives (for new or
    vanished traffic, the first dimension whose value is new or gone)."""

    driver: str
    path: Path
    amount: Decimal
    share: Decimal | None
    changes: tuple[CellChange, ...]


def _share(amount: Decimal, whole: Decimal) -> Decimal | None:
    with precise():
        return amount / whole if whole else None


def drivers_of(changes: Sequence[CellChange]) -> list[Driver]:
    """The drivers of ``changes`` rounded so that they add up to their delta exactly, largest
    magnitude first (drivers worth nothing are left out)."""
    totals: dict[str, Decimal] = {}
    with precise():
        for change in changes:
            add_into(totals, change.parts.items())
    delta = sum((c.delta for c in changes), ZERO).quantize(MONEY_PLACES)
    rounded = allocate({name: totals.get(name, ZERO) for name in DRIVERS}, delta)
    found = [Driver(name, amount, _share(amount, delta)) for name, amount in rounded.items()]
    return sorted((d for d in found if d.amount), key=lambda d: (-abs(d.amount), d.name))


def _value(change: CellChange, level: str) -> str:
    return str(change.key[LEVEL_INDEX[level]])


def contributors(
    changes: Sequence[CellChange], whole: Decimal, levels: Sequence[str] = TREE_LEVELS
) -> list[Contributor]:
    """The tree down ``levels``, keeping children worth at least :data:`MIN_SHARE` of the
    whole delta's size (at most :data:`MAX_CHILDREN`, largest first)."""
    return _children((), changes, abs(whole) * MIN_SHARE, whole, levels)


def _children(
    path: Path,
    changes: Sequence[CellChange],
    floor: Decimal,
    whole: Decimal,
    levels: Sequence[str],
) -> list[Contributor]:
    if not levels:
        return []
    level, rest = levels[0], levels[1:]
    by_value: dict[str, list[CellChange]] = {}
    for change in changes:
        by_value.setdefault(_value(change, level), []).append(change)
    nodes = []
    for value, group in by_value.items():
        delta = sum((c.delta for c in group), ZERO)
        if abs(delta) < floor or not delta:
            continue
        nodes.append((abs(delta), value, group))
    nodes.sort(key=lambda item: (-item[0], item[1]))
    out = []
    for _size, value, group in nodes[:MAX_CHILDREN]:
        node_path = (*path, (level, value))
        before = sum((c.before.cost_total for c in group if c.before), ZERO)
        after = sum((c.after.cost_total for c in group if c.after), ZERO)
        out.append(
            Contributor(
                node_path,
                before,
                after,
                _share(after - before, whole),
                drivers_of(group),
                _children(node_path, group, floor, whole, rest),
            )
        )
    return out


def novelty(change: CellChange, known: Callable[[Path], bool]) -> Path:
    """The path down to the first dimension whose value the other period never had (a new
    user on an old feature: ``…, ("user", "u-77")``); the whole group when every prefix is
    known (a known user on a feature new to them)."""
    path: Path = ()
    for level in (*GROUP_DIMENSIONS,):
        path = (*path, (level, str(change.key[DRIVER_DIMENSIONS.index(level)])))
        if not known(path):
            return path
    return path


def highlights(changes: Sequence[CellChange], whole: Decimal, count: int = 3) -> list[Highlight]:
    """The ``count`` largest (driver, place) pairs moving in the delta's direction and worth at
    least :data:`MIN_SHARE` of it."""
    if not whole:
        return []
    sign = 1 if whole > 0 else -1
    seen: dict[str, set[Path]] = {"before": set(), "after": set()}
    for change in changes:
        for side, measures in (("before", change.before), ("after", change.after)):
            if measures is not None:
                path: Path = ()
                for level in GROUP_DIMENSIONS:
                    path = (*path, (level, str(change.key[DRIVER_DIMENSIONS.index(level)])))
                    seen[side].add(path)
    varied = [
        level
        for level in (*GROUP_DIMENSIONS, "model")
        if len({_key_value(c, level) for c in changes}) > 1
    ]
    found: list[Highlight] = []
    for driver in DRIVERS:
        moving = [c for c in changes if c.parts.get(driver, ZERO) * sign > 0]
        if not moving:
            continue
        if driver in (NEW, VANISHED):
            other = seen["before" if driver == NEW else "after"]
            buckets: dict[Path, list[CellChange]] = {}
            for change in moving:
                buckets.setdefault(novelty(change, other.__contains__), []).append(change)
            for path, group in buckets.items():
                highlight = _highlight(driver, path, group, whole)
                # Name only what tells the place apart (not a scope's one app or env).
                shown = tuple(step for step in path[:-1] if step[0] in varied) + path[-1:]
                found.append(replace(highlight, path=shown))
        else:
            found.append(_highlight(driver, _narrow(driver, moving, varied), moving, whole))
    found = [h for h in found if h.share is not None and h.share >= MIN_SHARE]
    found.sort(key=lambda h: (-abs(h.amount), h.driver))
    return found[:count]


def _highlight(driver: str, path: Path, changes: Sequence[CellChange], whole: Decimal) -> Highlight:
    inside = [c for c in changes if all(_key_value(c, d) == v for d, v in path)]
    with precise():
        amount = sum((c.parts.get(driver, ZERO) for c in inside), ZERO)
    amount = amount.quantize(MONEY_PLACES)
    return Highlight(driver, path, amount, _share(amount, whole), tuple(inside))


def _key_value(change: CellChange, dimension: str) -> str:
    return str(change.key[DRIVER_DIMENSIONS.index(dimension)])


def _narrow(driver: str, changes: Sequence[CellChange], varied: Sequence[str]) -> Path:
    """The levels (team → app → feature → user → model, those with more than one value in the
    scope) where one value holds :data:`DESCEND_SHARE` of the driver's amount; a level where
    none does is skipped and the next one tried within the same cells."""
    path: Path = ()
    current = list(changes)
    with precise():
        for level in TREE_LEVELS:
            if level not in varied:
                continue
            total = sum((c.parts[driver] for c in current), ZERO)
            by_value: dict[str, list[CellChange]] = {}
            for change in current:
                by_value.setdefault(_value(change, level), []).append(change)
            best, group = max(
                by_value.items(),
                key=lambda item: (abs(sum((c.parts[driver] for c in item[1]), ZERO)), item[0]),
            )
            if abs(sum((c.parts[driver] for c in group), ZERO)) >= abs(total) * DESCEND_SHARE:
                path = (*path, (level, best))
                current = group
    return path
