"""FOCUS bills (CSV or Parquet): a cloud bill's AI lines (Bedrock, Azure OpenAI, Vertex AI, ...)
as invoice lines, read through the FinOps FOCUS columns.

Columns used: ``BilledCost`` (USD), ``BillingCurrency``, ``ChargePeriodStart`` (its UTC day:
times with an offset are converted, times without one are UTC), ``SubAccountId`` (the account
mapped to our tags), ``ConsumedQuantity`` with ``ConsumedUnit`` (tokens when the unit names
tokens, scaled by the unit's quantity: FOCUS's own ``1000 Tokens``, and ``1K``/``1M``/
``Thousand``/``Million`` prefixes). The model, in order: ``x_Model``; the AWS usage type
``x_UsageType`` (``USE1-NovaPro-input-tokens`` → ``nova-pro``: AWS ``SkuId`` values are opaque);
``SkuId`` when it reads ``provider/model``; else the meter's words (``SkuMeter``, Azure's
``x_SkuMeterName``, ``ChargeDescription``) without token-type and deployment words (``gpt 4o 0513
Input global Tokens`` → ``gpt-4o-0513``). ``InvoiceId`` is kept (for the FOCUS export's).
The token type: ``x_TokenType``, else keywords (``cache read``/``cached``, ``cache write``/
``cache creation``, ``input``, ``output`` and Azure's ``Inp``/``Outp``/``cchd``) in the usage
type, meter, description or ``SkuId``. Lines without a token type are kept as ``other`` (they
count, but cannot be split by token).

Several files of one bill (a month delivered in parts) are read as one report
(:func:`parse_focus_files`): a day that spans two files keeps the lines of both.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from spendstream.reconcile.lines import InvoiceLine, ReportError, TokenType, combine
from spendstream.reconcile.providers import Parsed
from spendstream.sinks.arrow import require_pyarrow

KEYWORDS: tuple[tuple[str, TokenType], ...] = (
    ("cache read", "cache_read"),
    ("cached", "cache_read"),
    ("cchd", "cache_read"),
    ("cache write", "cache_write"),
    ("cache creation", "cache_write"),
    ("input", "input"),
    ("inp", "input"),
    ("output", "output"),
    ("outp", "output"),
)
# Without these a line has no amount or no day (a missing column would read as 0 or fail late).
REQUIRED = ("BilledCost", "ChargePeriodStart")
TOKEN_TYPE_NAMES = {"input", "cache_read", "cache_write", "output"}
# Where spendstream's export names a row's driver (a usage unit), the suffix of its SkuId.
DRIVER_COLUMNS = ("x_CostDriver", "ConsumedUnit")
TEXT_COLUMNS = ("x_UsageType", "SkuMeter", "x_SkuMeterName", "ChargeDescription", "SkuId")
MULTIPLIERS = {"k": 1_000, "thousand": 1_000, "m": 1_000_000, "million": 1_000_000}
# "[<quantity>][ ][K|M|Thousand|Million] Token(s)": FOCUS UnitFormat and the providers' forms.
TOKEN_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)?\s*(k|m|thousand|million)?\s*tokens?\s*$", re.I)
# AWS usage types: "<region code>-<model>-<what is metered>", e.g. USE1-NovaPro-input-tokens.
AWS_REGION = re.compile(r"^[A-Z]{2,4}\d?-")
AWS_METERED = re.compile(
    r"-(?:cache-?(?:read|write)-?)?(?:input|output|in|out)?-?(?:token|tokens|token-count)"
    r"(?:-[a-z0-9]+)*$|-(?:input|output|cache-?read|cache-?write)(?:-[a-z0-9]+)*$",
    re.I,
)
CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z0-9])|(?<=[0-9])(?=[A-Z][a-z])|\.")
# Words of a meter that name the token type, deployment or unit, not the model.
METER_NOISE = {
    "input", "inp", "output", "outp", "cached", "cchd", "cache", "read", "write", "creation",
    "tokens", "token", "text", "global", "glbl", "regional", "regnl", "data", "zone", "dzone",
    "batch", "predictions", "prediction", "1k", "1m", "per", "for", "of", "-",
}  # fmt: skip


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The bill's rows as dicts (CSV by default; ``.parquet`` files through pyarrow), after
    checking it has a header with the :data:`REQUIRED` columns: a bill without ``BilledCost``
    would load as $0 and replace the days it covers."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            require_pyarrow(f"reading {path.name}")
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            names, rows = list(table.column_names), list(table.to_pylist())
        else:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                names, rows = list(reader.fieldnames or []), list(reader)
    except (OSError, ValueError, csv.Error) as exc:
        raise ReportError(f"{path}: not a readable FOCUS file: {exc}") from None
    if not names:
        raise ReportError(f"{path}: empty: a FOCUS bill starts with its header row")
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise ReportError(
            f"{path}: no {' or '.join(missing)} column: a FOCUS bill needs "
            f"{', '.join(REQUIRED)} (export the bill with them, or rename the columns)"
        )
    return rows  # a header alone is a bill without AI charges: it loads nothing


def _words(row: dict[str, Any]) -> str:
    text = " ".join(str(row.get(column) or "") for column in TEXT_COLUMNS)
    return " " + re.sub(r"[_\-/,:()]", " ", text).lower() + " "


def token_type(row: dict[str, Any]) -> TokenType:
    explicit = str(row.get("x_TokenType") or "").strip().lower()
    if explicit in TOKEN_TYPE_NAMES:
        return explicit  # type: ignore[return-value]
    words = _words(row)
    for word, kind in KEYWORDS:
        if f" {word} " in words:
            return kind
    return "other"


def token_scale(unit: str) -> int | None:
    """Tokens per ``ConsumedUnit`` (``Tokens`` 1, ``1000 Tokens``/``1K Tokens`` 1,000,
    ``1M Tokens``/``Million Tokens`` 1,000,000); None when the unit is not tokens."""
    found = TOKEN_UNIT.match(unit)
    if found is None:
        return None
    number, word = found.groups()
    scale = Decimal(number or 1) * MULTIPLIERS.get((word or "").lower(), 1)
    return int(scale)


def tokens(row: dict[str, Any], where: str) -> int:
    unit = str(row.get("ConsumedUnit") or "")
    scale = token_scale(unit)
    if scale is None:
        if "token" in unit.lower():
            raise ReportError(f"{where}: ConsumedUnit {unit!r} is not a token unit we can read")
        return 0
    try:
        quantity = Decimal(str(row.get("ConsumedQuantity") or 0)) * scale
    except InvalidOperation:
        raise ReportError(f"{where}: ConsumedQuantity is not a number") from None
    return int(quantity.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def aws_usage_model(usage_type: str) -> str:
    """The model of an AWS usage type: ``USE1-NovaPro-input-tokens`` → ``nova-pro``,
    ``USW2-Claude3.5Sonnet-output-tokens`` → ``claude-3-5-sonnet``; ``""`` when none is left."""
    rest = AWS_METERED.sub("", AWS_REGION.sub("", usage_type.strip()))
    return "-".join(part for part in CAMEL.split(rest) if part).lower().strip("-")


def meter_model(text: str) -> str:
    """The model named by a meter or description, without token-type and deployment words."""
    words = re.sub(r"[_,:()]", " ", text).split()
    kept = [word for word in words if word.lower() not in METER_NOISE]
    return "-".join(kept).lower()


def sku_model(tail: str, row: dict[str, Any]) -> str:
    """The model of a ``provider/model[:driver]`` SkuId's tail: spendstream's own export ends it
    with the token type or usage unit (``anthropic.claude-3-5-haiku-20241022-v1:0:input``), which
    is dropped; a colon inside the model id (Bedrock's ``-v1:0``) stays."""
    model, colon, driver = tail.rpartition(":")
    drivers = TOKEN_TYPE_NAMES | {str(row.get(name) or "") for name in DRIVER_COLUMNS} - {""}
    return model if colon and model and driver in drivers else tail


def model_name(row: dict[str, Any]) -> str:
    explicit = str(row.get("x_Model") or "").strip()
    if explicit:
        return explicit
    usage_type = str(row.get("x_UsageType") or "").strip()
    if usage_type and aws_usage_model(usage_type):
        return aws_usage_model(usage_type)
    sku = str(row.get("SkuId") or "")
    if "/" in sku:
        return sku_model(sku.rsplit("/", 1)[-1], row)
    for column in ("SkuMeter", "x_SkuMeterName", "ChargeDescription"):
        text = str(row.get(column) or "")
        if text and meter_model(text):
            return meter_model(text)
    return sku


def charge_day(value: Any, where: str) -> date:
    """The UTC day of ``ChargePeriodStart`` (an offset converted; no offset means UTC)."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ReportError(f"{where}: ChargePeriodStart {value!r} is not a time") from None
    if moment.tzinfo is None:
        return moment.date()
    return moment.astimezone(UTC).date()


def _line(provider: str, row: dict[str, Any], where: str) -> InvoiceLine:
    currency = str(row.get("BillingCurrency") or "USD").upper()
    if currency != "USD":
        raise ReportError(f"{where}: BillingCurrency {currency!r}; only USD bills supported")
    try:
        amount = Decimal(str(row.get("BilledCost") or 0))
    except InvalidOperation:
        raise ReportError(f"{where}: BilledCost is not a number") from None
    meter = row.get("SkuMeter") or row.get("x_SkuMeterName") or row.get("x_UsageType")
    return InvoiceLine(
        provider=provider,
        kind="focus",
        day=charge_day(row.get("ChargePeriodStart"), where),
        model=model_name(row),
        line_item=str(meter or row.get("ChargeDescription") or ""),
        token_type=token_type(row),
        account=str(row.get("SubAccountId") or ""),
        amount_usd=amount,
        tokens=tokens(row, where),
        invoice_id=str(row.get("InvoiceId") or ""),
    )


def parse_focus_files(provider: str, paths: Sequence[Path]) -> Parsed:
    """Invoice lines of one FOCUS bill (one file or several parts), filed under ``provider``
    (our ledger's provider name); lines of the same key in two parts are summed."""
    parsed = Parsed()
    lines: list[InvoiceLine] = []
    for path in paths:
        for number, row in enumerate(read_rows(path), start=2):
            line = _line(provider, row, f"{path}:{number}")
            lines.append(line)
            parsed.buckets.add((provider, "focus", line.day))
    parsed.lines = combine(lines)
    return parsed


def parse_focus(provider: str, path: Path) -> Parsed:
    """Invoice lines of a FOCUS bill in one file (see :func:`parse_focus_files`)."""
    return parse_focus_files(provider, [path])
