"""Invoiced amounts for the FOCUS export's ``BilledCost`` (see :func:`spendstream.sinks.
focus_export.apply_invoices`): dollars per (day, provider, catalog model) of the loaded cost
reports and FOCUS bills, their invoice id where the lines name one, and the function that maps
a ledger (provider, model) onto the same model key."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from spendstream.pricing import Pricer
from spendstream.reconcile.ledger_side import model_names
from spendstream.reconcile.store import read_lines
from spendstream.sinks.access import Reader
from spendstream.sinks.focus import month_bounds
from spendstream.sinks.focus_export import Invoiced, InvoiceKey


def invoiced_amounts(reader: Reader, pricer: Pricer, month: str) -> Invoiced:
    """The loaded invoices of ``month`` for ``export_focus(..., invoices=...)``."""
    start, end = month_bounds(month)
    amounts: dict[InvoiceKey, Decimal] = defaultdict(Decimal)
    ids: dict[InvoiceKey, set[str]] = defaultdict(set)
    canonical = model_names(pricer)
    for line in read_lines(reader, start.date(), end.date(), kinds=("cost", "focus")):
        model = canonical(line.provider, line.model, "") if line.model else ""
        amounts[(line.day, line.provider, model)] += line.amount_usd
        ids[(line.day, line.provider, model)].add(line.invoice_id)

    def model_key(provider: str, model: str) -> str:
        return canonical(provider, model, "")

    # An invoice id where every line of the group names the same one.
    named = {key: next(iter(found)) for key, found in ids.items() if len(found) == 1}
    return Invoiced(dict(amounts), model_key, {k: v for k, v in named.items() if v})
