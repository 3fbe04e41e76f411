"""Explain: why spend changed between two periods, exactly (docs/explain.md).

Public API:

- :func:`explain` — the delta of a scope between a period and a baseline, split into drivers
  that add up to it exactly, the contributors tree and one sentence to paste into a channel.
- :func:`default_periods` — the last 24 h and the same 24 h one week earlier.
- :class:`Scope`, :class:`Explanation`, :class:`Driver`, :class:`Contributor`, :class:`Highlight`.

Budget, spike and anomaly alerts and the dashboard's "What changed" panel call :func:`explain`
and use ``sentence`` and ``highlights`` (the top drivers, with where they live).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from spendstream.durations import format_duration
from spendstream.explain.cells import ZERO, CellKey, Measures, Scope
from spendstream.explain.decompose import DRIVER_LABELS, DRIVERS, decompose
from spendstream.explain.lumping import read_both
from spendstream.explain.report import (
    Contributor,
    Driver,
    Highlight,
    contributors,
    drivers_of,
    highlights,
)
from spendstream.explain.sentence import baseline_label, item, money, sentence
from spendstream.moments import check_period, shifted
from spendstream.sinks.access import Reader

# Above this many tag groups, users outside the MAX_GROUPS groups that moved most are merged
# (explain.lumping, in SQL): the decomposition costs ~0.2 ms per cell in Python (docs/explain.md).
MAX_GROUPS = 300
DEFAULT_SPAN = timedelta(hours=24)
DEFAULT_OFFSET = timedelta(days=7)
Period = tuple[datetime, datetime]


@dataclass(frozen=True)
class Explanation:
    scope: Scope
    period: Period
    baseline: Period
    before: Decimal
    after: Decimal
    drivers: list[Driver]  # add up to delta exactly
    contributors: list[Contributor]
    highlights: list[Highlight]
    sentence: str

    @property
    def delta(self) -> Decimal:
        return self.after - self.before

    def top_drivers(self) -> list[str]:
        """The highlights as short texts (``64 % feature=x, where …``), for alert messages."""
        return [item(h, list(self.scope.filters)) for h in self.highlights]

    def to_json(self) -> dict[str, Any]:
        """Decimals as exact strings; shares as fractions of the delta."""
        return {
            "scope": {k: list(v) for k, v in self.scope.filters.items()},
            "since": self.period[0].isoformat(),
            "until": self.period[1].isoformat(),
            "vs_since": self.baseline[0].isoformat(),
            "vs_until": self.baseline[1].isoformat(),
            "before_usd": self.before,
            "after_usd": self.after,
            "delta_usd": self.delta,
            "sentence": self.sentence,
            "drivers": [_driver_json(d) for d in self.drivers],
            "highlights": [
                {
                    "driver": h.driver,
                    "label": DRIVER_LABELS[h.driver],
                    "path": [list(step) for step in h.path],
                    "amount_usd": h.amount,
                    "share": h.share,
                    "text": item(h, list(self.scope.filters)),
                }
                for h in self.highlights
            ],
            "contributors": [_contributor_json(c) for c in self.contributors],
        }


def _driver_json(driver: Driver) -> dict[str, Any]:
    return {
        "driver": driver.name,
        "label": driver.label,
        "amount_usd": driver.amount,
        "share": driver.share,
    }


def _contributor_json(node: Contributor) -> dict[str, Any]:
    dimension, value = node.path[-1]
    return {
        "dimension": dimension,
        "value": value,
        "before_usd": node.before,
        "after_usd": node.after,
        "delta_usd": node.delta,
        "share": node.share,
        "drivers": [_driver_json(d) for d in node.drivers],
        "children": [_contributor_json(c) for c in node.children],
    }


def default_periods(now: datetime | None = None) -> tuple[Period, Period]:
    """The last 24 h, and the same 24 h one week earlier."""
    until = now or datetime.now(UTC)
    since = until - DEFAULT_SPAN
    return (since, until), (since - DEFAULT_OFFSET, until - DEFAULT_OFFSET)


def periods(
    since: datetime,
    until: datetime,
    vs_offset: timedelta | None = None,
    vs_since: datetime | None = None,
    vs_until: datetime | None = None,
) -> tuple[Period, Period]:
    """The period ``[since, until)`` and its baseline: ``[vs_since, vs_until)`` when given,
    else the period moved back by ``vs_offset`` (default one week). Raises ValueError for an
    empty period or a half-given baseline."""
    if (vs_since is None) != (vs_until is None):
        raise ValueError("give both vs_since and vs_until, or neither (then vs: an offset)")
    if vs_since is not None and vs_offset is not None:
        raise ValueError("give vs (an offset) or vs_since/vs_until, not both")
    check_period(since, until)
    if vs_since is not None and vs_until is not None:
        if vs_since >= vs_until:
            raise ValueError(f"vs_since ({vs_since.isoformat()}) must come before vs_until")
        return (since, until), (vs_since, vs_until)
    offset = DEFAULT_OFFSET if vs_offset is None else vs_offset
    if offset <= timedelta(0):
        raise ValueError("vs must be a positive offset into the past, e.g. 7d or 1d")
    shown = f"the baseline ({format_duration(offset)} before since)"
    return (since, until), (shifted(since, -offset, shown), shifted(until, -offset, shown))


def explain(reader: Reader, scope: Scope, period: Period, baseline: Period) -> Explanation:
    """Why the spend of ``scope`` moved from ``baseline`` to ``period`` (each ``[since,
    until)``): every figure from the rollups and the ledger edges, exact."""
    if period[0] >= period[1] or baseline[0] >= baseline[1]:
        raise ValueError("a period's since must come before its until")
    before_cells, after_cells = read_both(reader, scope, period, baseline, MAX_GROUPS)
    return explain_cells(scope, period, baseline, before_cells, after_cells)


def explain_cells(
    scope: Scope,
    period: Period,
    baseline: Period,
    before_cells: Mapping[CellKey, Measures],
    after_cells: Mapping[CellKey, Measures],
) -> Explanation:
    """:func:`explain` from the cells already read (the benchmark times the read apart)."""
    changes = decompose(before_cells, after_cells)
    before = sum((c.cost_total for c in before_cells.values()), ZERO)
    after = sum((c.cost_total for c in after_cells.values()), ZERO)
    delta = after - before
    found = highlights(changes, delta)
    label = scope.label()
    text = sentence(
        label, before, after, baseline_label(period, baseline), found, list(scope.filters)
    )
    return Explanation(
        scope,
        period,
        baseline,
        before,
        after,
        drivers_of(changes),
        contributors(changes, delta),
        found,
        text,
    )


__all__ = [
    "DRIVERS",
    "Contributor",
    "Driver",
    "Explanation",
    "Highlight",
    "Scope",
    "default_periods",
    "explain",
    "money",
    "periods",
]
