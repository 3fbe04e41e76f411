"""Invoice lines: what a provider report says, normalised to one row type.

A parser turns a report into :class:`InvoiceLine` values; :func:`combine` sums lines sharing a
natural key (a report grouped finer than we keep, or one bucket split over pages), so every key
appears once per load.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Literal

from spendstream.errors import InputError

Kind = Literal["cost", "usage", "focus"]
TokenType = Literal["input", "cache_read", "cache_write", "output", "other"]
TOKEN_TYPES: tuple[TokenType, ...] = ("input", "cache_read", "cache_write", "output")
AMOUNT_QUANTUM = Decimal("1e-18")  # invoice_lines.amount_usd is Decimal(38, 18)


LineKey = tuple[str, str, date, str, str, str, str, str, str]


class ReportError(InputError, ValueError):
    """A report that cannot be read; the message names the file, the item and what is wrong."""


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One line of a provider report. Amounts in USD (Decimal), tokens as integers."""

    provider: str
    kind: Kind
    day: date
    model: str
    line_item: str
    token_type: TokenType
    account: str = ""
    api_key: str = ""
    service_tier: str = ""
    context_window: str = ""
    amount_usd: Decimal = Decimal(0)
    tokens: int = 0
    requests: int = 0
    invoice_id: str = ""  # the provider's invoice (FOCUS ``InvoiceId``); not part of the key

    @property
    def key(self) -> LineKey:
        return (
            self.provider,
            self.kind,
            self.day,
            self.account,
            self.api_key,
            self.model,
            self.line_item,
            self.service_tier,
            self.context_window,
        )

    @property
    def values(self) -> tuple[str, Decimal, int, int, str]:
        return (self.token_type, self.amount_usd, self.tokens, self.requests, self.invoice_id)


def combine(lines: Iterable[InvoiceLine]) -> list[InvoiceLine]:
    """Sum lines with the same key (amounts, tokens, requests); sorted by key; amounts at
    the stored precision (1e-18 USD)."""
    merged: dict[LineKey, InvoiceLine] = {}
    for line in lines:
        seen = merged.get(line.key)
        if seen is None:
            merged[line.key] = line
        else:
            merged[line.key] = replace(
                seen,
                amount_usd=seen.amount_usd + line.amount_usd,
                tokens=seen.tokens + line.tokens,
                requests=seen.requests + line.requests,
            )
    return [
        replace(merged[key], amount_usd=merged[key].amount_usd.quantize(AMOUNT_QUANTUM))
        for key in sorted(merged)
    ]
