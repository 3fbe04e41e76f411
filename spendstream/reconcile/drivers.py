"""Cost drivers that are not tokens (web search, code execution, file search, ...): invoice line
items mapped to our usage units (docs/cost-drivers.md), and the split of one driver's
difference into causes.

A **driver** is a unit name without its variants (``web_search_calls.high`` and
``web_search_calls`` are both ``web_search_calls``; ``images.1024x1024.hd`` is ``images``). An
invoice line that is not tokens maps to a driver through :data:`LINE_ITEM_DRIVERS`; a line item
the table does not know stays ``unmapped:<line item>`` and its dollars unexplained.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from spendstream.pricing.compiled import EXACT
from spendstream.reconcile.lines import AMOUNT_QUANTUM, InvoiceLine

ZERO = Decimal(0)
TOKENS = "tokens"  # the driver of every token line (the token split of variance.split_cell)
UNMAPPED = "unmapped:"

# (provider, cost line item) -> our unit. Anthropic's cost_report line item is
# "<cost_type>:<token_type>" (only the cost_type is matched); OpenAI's Costs API line item is
# free text, matched lower-cased. Documented in docs/reconciliation.md ("Cost drivers").
LINE_ITEM_DRIVERS: dict[tuple[str, str], str] = {
    ("anthropic", "web_search"): "web_search_calls",
    ("anthropic", "code_execution"): "code_execution_hours",
    ("openai", "web search tool calls"): "web_search_calls",
    ("openai", "file search tool calls"): "file_search_calls",
    ("openai", "file search storage"): "vector_storage_gb_days",
    ("openai", "vector store storage"): "vector_storage_gb_days",
}
# (provider, usage line item) -> the unit whose invoiced quantity the line carries.
QUANTITY_DRIVERS: dict[tuple[str, str], str] = {
    ("anthropic", "server_tool_use.web_search_requests"): "web_search_calls",
}


def line_driver(line: InvoiceLine) -> str:
    """The driver of an invoice line that is not tokens (cost lines and quantity lines)."""
    item = line.line_item
    if line.kind == "usage":
        return QUANTITY_DRIVERS.get((line.provider, item), UNMAPPED + item)
    key = item.split(":", 1)[0] if line.provider == "anthropic" else item.strip().lower()
    return LINE_ITEM_DRIVERS.get((line.provider, key), UNMAPPED + item)


def unit_driver(unit: str) -> str:
    """The driver of one of our unit names (its variants dropped)."""
    return unit.split(".", 1)[0]


@dataclass
class DriverSums:
    """One driver in one cell: invoiced dollars and quantity (``None``: the invoice carries no
    quantity for it), our cost, priced and unpriced quantities."""

    invoiced: Decimal = ZERO
    quantity: Decimal | None = None
    cost: Decimal = ZERO
    ours: Decimal = ZERO
    unpriced: Decimal = ZERO


@dataclass
class DriverSplit:
    """The causes of one driver's difference: ``invoiced - cost`` = their sum, exactly."""

    price_drift: Decimal = ZERO
    never_seen: Decimal = ZERO
    unpriced: Decimal = ZERO
    unexplained: Decimal = ZERO


def _money(value: Decimal) -> Decimal:
    return value.quantize(AMOUNT_QUANTUM, context=EXACT)


def split_driver(driver: str, sums: DriverSums) -> DriverSplit:
    """With the invoice's quantity ``Q`` (effective rate ``p = invoiced / Q``): ``unpriced`` =
    our unpriced quantity x p, ``never_seen`` = (Q - ours - unpriced quantity) x p, and
    ``price_drift`` the rest (= p x ours - our cost). Without a quantity (or with ``Q = 0``), and
    for unmapped line items, the driver's difference is ``unexplained`` (with ``Q = 0`` our cost
    is ``never_seen``: usage the provider did not bill)."""
    split = DriverSplit()
    if driver.startswith(UNMAPPED) or sums.quantity is None:
        split.unexplained = sums.invoiced - sums.cost
        return split
    if not sums.quantity:
        split.never_seen, split.unexplained = -sums.cost, sums.invoiced
        return split
    price = EXACT.divide(sums.invoiced, sums.quantity)
    split.unpriced = _money(EXACT.multiply(sums.unpriced, price))
    split.never_seen = _money(EXACT.multiply(sums.quantity - sums.ours - sums.unpriced, price))
    split.price_drift = sums.invoiced - sums.cost - split.unpriced - split.never_seen
    return split
