"""FOCUS bills (CSV or Parquet): a cloud bill's AI lines (Bedrock, Azure OpenAI, ...) as invoice
lines, read through the FinOps FOCUS columns.

Columns used: ``BilledCost`` (USD), ``BillingCurrency``, ``ChargePeriodStart`` (its UTC day),
``SubAccountId`` (the account mapped to our tags), ``ConsumedQuantity`` with ``ConsumedUnit``
(tokens when the unit names tokens; ``1K``/``1M`` prefixes are scaled), and for the model and
token type, in order: ``x_Model``, else ``SkuId`` (``provider/model`` keeps the part after the
slash); ``x_TokenType``, else keywords (``cache read``/``cached``, ``cache write``/``cache
creation``, ``input``, ``output``) in ``SkuMeter``, ``ChargeDescription`` or ``SkuId``. Lines
without a token type are kept as ``other`` (they count, but cannot be split by token).
"""

from __future__ import annotations

import csv
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from spendstream.reconcile.lines import InvoiceLine, ReportError, TokenType, combine
from spendstream.reconcile.providers import Parsed

KEYWORDS: tuple[tuple[str, TokenType], ...] = (
    ("cache read", "cache_read"),
    ("cache-read", "cache_read"),
    ("cached", "cache_read"),
    ("cache write", "cache_write"),
    ("cache-write", "cache_write"),
    ("cache creation", "cache_write"),
    ("input", "input"),
    ("output", "output"),
)
TOKEN_TYPE_NAMES = {"input", "cache_read", "cache_write", "output"}
SCALES = (("1m", 1_000_000), ("million", 1_000_000), ("1k", 1_000), ("thousand", 1_000))


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The bill's rows as dicts (CSV by default; ``.parquet`` files through pyarrow)."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return list(pq.read_table(path).to_pylist())
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return list(csv.DictReader(handle))
    except (OSError, ValueError, csv.Error) as exc:
        raise ReportError(f"{path}: not a readable FOCUS file: {exc}") from None


def token_type(row: dict[str, Any]) -> TokenType:
    explicit = str(row.get("x_TokenType") or "").strip().lower()
    if explicit in TOKEN_TYPE_NAMES:
        return explicit  # type: ignore[return-value]
    text = " ".join(str(row.get(c) or "") for c in ("SkuMeter", "ChargeDescription", "SkuId"))
    lowered = text.lower().replace("_", " ")
    for word, kind in KEYWORDS:
        if word in lowered:
            return kind
    return "other"


def tokens(row: dict[str, Any], where: str) -> int:
    unit = str(row.get("ConsumedUnit") or "").lower()
    if "token" not in unit:
        return 0
    scale = next((factor for name, factor in SCALES if name in unit), 1)
    try:
        return int(Decimal(str(row.get("ConsumedQuantity") or 0)) * scale)
    except InvalidOperation:
        raise ReportError(f"{where}: ConsumedQuantity is not a number") from None


def model_name(row: dict[str, Any]) -> str:
    explicit = str(row.get("x_Model") or "").strip()
    return explicit or str(row.get("SkuId") or "").rsplit("/", 1)[-1]


def _day(value: Any, where: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).date()
    except ValueError:
        raise ReportError(f"{where}: ChargePeriodStart {value!r} is not a time") from None


def parse_focus(provider: str, path: Path) -> Parsed:
    """Invoice lines of a FOCUS bill, filed under ``provider`` (our ledger's provider name)."""
    parsed = Parsed()
    lines: list[InvoiceLine] = []
    for number, row in enumerate(read_rows(path), start=2):
        where = f"{path}:{number}"
        currency = str(row.get("BillingCurrency") or "USD").upper()
        if currency != "USD":
            raise ReportError(f"{where}: BillingCurrency {currency!r}; only USD bills supported")
        try:
            amount = Decimal(str(row.get("BilledCost") or 0))
        except InvalidOperation:
            raise ReportError(f"{where}: BilledCost is not a number") from None
        kind = token_type(row)
        day = _day(row.get("ChargePeriodStart"), where)
        lines.append(
            InvoiceLine(
                provider=provider,
                kind="focus",
                day=day,
                model=model_name(row),
                line_item=str(row.get("SkuMeter") or row.get("ChargeDescription") or ""),
                token_type=kind,
                account=str(row.get("SubAccountId") or ""),
                amount_usd=amount,
                tokens=tokens(row, where),
            )
        )
        parsed.buckets.add((provider, "focus", day))
    parsed.lines = combine(lines)
    return parsed
