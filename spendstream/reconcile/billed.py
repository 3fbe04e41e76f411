"""Invoiced amounts for the FOCUS export's ``BilledCost`` (see :func:`spendstream.sinks.focus.
apply_invoices`): dollars per (day, provider, catalog model) of the loaded cost reports and
FOCUS bills, and the function that maps a ledger (provider, model) onto the same model key."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date
from decimal import Decimal

from spendstream.pricing import Pricer
from spendstream.reconcile.ledger_side import model_names
from spendstream.reconcile.store import read_lines
from spendstream.sinks.access import Reader
from spendstream.sinks.focus import month_bounds

InvoiceKey = tuple[date, str, str]


def invoiced_amounts(
    reader: Reader, pricer: Pricer, month: str
) -> tuple[dict[InvoiceKey, Decimal], Callable[[str, str], str]]:
    """``(amounts, model_key)`` for ``export_focus(..., invoices=...)``."""
    start, end = month_bounds(month)
    amounts: dict[InvoiceKey, Decimal] = defaultdict(Decimal)
    canonical = model_names(pricer)
    for line in read_lines(reader, start.date(), end.date(), kinds=("cost", "focus")):
        model = canonical(line.provider, line.model, "") if line.model else ""
        amounts[(line.day, line.provider, model)] += line.amount_usd

    def model_key(provider: str, model: str) -> str:
        return canonical(provider, model, "")

    return dict(amounts), model_key
