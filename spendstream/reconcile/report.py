"""The variance as a table: cells summed by day, model or project, plus a total row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from spendstream.reconcile.ledger_side import AccountMap
from spendstream.reconcile.variance import CellVariance, Variance

By = Literal["day", "model", "project", "team"]
BY_CHOICES: tuple[By, ...] = ("day", "model", "project", "team")
VALUE_COLUMNS = (
    "invoiced_usd",
    "our_usd",
    "difference_usd",
    "difference_pct",
    "invoiced_tokens",
    "our_tokens",
    "token_difference",
    "price_drift",
    "never_seen",
    "unpriced",
    "hidden",
    "unexplained",
    "coverage_pct",
)
GROUP_COLUMNS: dict[By, tuple[str, ...]] = {
    "day": ("day",),
    "model": ("provider", "model"),
    "project": ("provider", "project"),
    "team": ("team",),
}


def group_key(cell: CellVariance, by: By, accounts: Mapping[str, AccountMap]) -> tuple[str, ...]:
    day, provider, label, model = cell.key
    if by == "day":
        return (day.isoformat(),)
    if by == "model":
        return (provider, model or "(not a model)")
    mapping = accounts.get(provider) or AccountMap({})
    if by == "team":
        return (mapping.team(label) or "(unmapped)",)
    return (provider, mapping.tags(label))


def values(v: Variance) -> list[Any]:
    """Exact Decimals (the CLI and JSON print them with ``events.decimal_text``)."""
    return [
        v.invoiced_usd,
        v.our_usd,
        v.difference,
        v.percent,
        v.invoiced_tokens,
        v.our_tokens,
        v.invoiced_tokens - v.our_tokens,
        v.price_drift,
        v.never_seen,
        v.unpriced,
        v.hidden,
        v.unexplained,
        v.coverage,
    ]


def variance_table(
    cells: Sequence[CellVariance], by: By, accounts: Mapping[str, AccountMap]
) -> tuple[list[str], list[list[Any]], Variance]:
    """``(columns, rows, total)``; the last row is the total (group columns ``TOTAL``)."""
    groups: dict[tuple[str, ...], Variance] = {}
    total = Variance()
    for cell in cells:
        groups.setdefault(group_key(cell, by, accounts), Variance()).add(cell.variance)
        total.add(cell.variance)
    names = GROUP_COLUMNS[by]
    rows = [[*key, *values(groups[key])] for key in sorted(groups)]
    rows.append(["TOTAL", *([""] * (len(names) - 1)), *values(total)])
    return [*names, *VALUE_COLUMNS], rows, total
