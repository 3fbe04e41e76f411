"""The variance as a table: cells summed by day, model or project, plus a total row.

Each group's row has ``driver = all``. A group with cost drivers other than tokens (web search,
code execution, unmapped line items: reconcile.drivers) is preceded by one row per driver
(``tokens``, ``web_search_calls``, ``unmapped:...``) that add up to it; the table's last row is
the total of every group (``all``), preceded by its own driver rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

from spendstream.reconcile.drivers import TOKENS
from spendstream.reconcile.ledger_side import AccountMap
from spendstream.reconcile.variance import CellVariance, DriverLine, Variance

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
    "invoiced_quantity",
    "our_quantity",
)
ALL = "all"
ZERO_QUANTITY = Decimal(0)
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


def _driver_rows(
    key: tuple[str, ...], drivers: Mapping[str, DriverLine], total: Variance
) -> list[list[Any]]:
    """The group's driver rows (none when tokens are its only driver), then its ``all`` row."""
    rows = []
    if set(drivers) - {TOKENS}:
        for name in sorted(drivers, key=lambda d: (d != TOKENS, d)):
            line = drivers[name]
            row = [*key, name, *values(line.variance)[:-1], None]  # coverage: per group only
            quantities = (
                (line.invoiced_quantity, line.our_quantity) if name != TOKENS else (None,) * 2
            )
            rows.append([*row, *quantities])
    rows.append([*key, ALL, *values(total), None, None])
    return rows


def variance_table(
    cells: Sequence[CellVariance], by: By, accounts: Mapping[str, AccountMap]
) -> tuple[list[str], list[list[Any]], Variance]:
    """``(columns, rows, total)``; the last row is the total (group columns ``TOTAL``)."""
    groups: dict[tuple[str, ...], Variance] = {}
    drivers: dict[tuple[str, ...], dict[str, DriverLine]] = {}
    total = Variance()
    total_drivers: dict[str, DriverLine] = {}
    for cell in cells:
        key = group_key(cell, by, accounts)
        groups.setdefault(key, Variance()).add(cell.variance)
        total.add(cell.variance)
        for sums in (drivers.setdefault(key, {}), total_drivers):
            for name, line in cell.drivers.items():
                sums.setdefault(name, DriverLine(Variance(), ZERO_QUANTITY)).add(line)
    names = GROUP_COLUMNS[by]
    rows = []
    for key in sorted(groups):
        rows += _driver_rows(key, drivers.get(key, {}), groups[key])
    rows += _driver_rows(("TOTAL", *([""] * (len(names) - 1))), total_drivers, total)
    return [*names, "driver", *VALUE_COLUMNS], rows, total
