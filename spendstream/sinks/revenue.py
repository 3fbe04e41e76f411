"""Revenue per customer and period (docs/agents.md "Margin"): imported from CSV or
``POST /api/v1/revenue``, stored in ``customer_revenue`` (migration 1101). Re-importing the same
customer and period replaces its amount (the latest import wins)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from clickhouse_connect.driver.client import Client
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from spendstream.errors import InputError
from spendstream.events import Customer, describe_validation_error

REVENUE_COLUMNS = ["customer", "period_start", "period_end", "amount", "note", "imported_at"]
CSV_HEADER = ("customer", "period_start", "period_end", "amount")
MAX_ROWS = 100_000


class RevenueError(InputError, ValueError):
    """Revenue input that cannot be stored; the message names the row and the problem."""


class Revenue(BaseModel):
    """Revenue from one customer over ``[period_start, period_end)`` (UTC days), in USD."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customer: Customer
    period_start: date
    period_end: date
    amount: Annotated[Decimal, Field(ge=0, le=10**15, max_digits=38, decimal_places=18)]
    note: Annotated[str, Field(max_length=200)] = ""

    @model_validator(mode="after")
    def _ordered(self) -> Revenue:
        if self.period_end <= self.period_start:
            raise ValueError("period_end must be after period_start (the end is exclusive)")
        return self

    def row(self, imported_at: datetime) -> list[Any]:
        return [
            self.customer,
            self.period_start,
            self.period_end,
            self.amount,
            self.note,
            imported_at,
        ]


def revenue_rows(
    items: list[dict[str, Any]], where: str = "item", numbers: list[int] | None = None
) -> list[Revenue]:
    """Validate every item (all or nothing); raises :class:`RevenueError` naming each bad one
    as ``<where> <number>`` (``numbers``: each item's, default 1, 2, ...)."""
    if len(items) > MAX_ROWS:
        raise RevenueError(f"{len(items)} rows; at most {MAX_ROWS} per import")
    rows, problems = [], []
    for number, item in zip(numbers or range(1, len(items) + 1), items, strict=True):
        try:
            rows.append(Revenue.model_validate(item))
        except ValidationError as exc:
            problems.append(f"{where} {number}: {describe_validation_error(exc)}")
    if problems:
        raise RevenueError("; ".join(problems[:20]) + ("; ..." if len(problems) > 20 else ""))
    return rows


def parse_revenue_csv(text: str) -> list[Revenue]:
    """``customer,period_start,period_end,amount[,note]`` with that header; dates as
    YYYY-MM-DD, amounts as decimal text (USD). A leading byte-order mark (Excel's "CSV UTF-8")
    is dropped; errors name the file's line (the header is line 1)."""
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))
    missing = [name for name in CSV_HEADER if name not in (reader.fieldnames or [])]
    if missing:
        raise RevenueError(
            f"CSV header lacks {', '.join(missing)}; expected {','.join(CSV_HEADER)}[,note]"
        )
    items, numbers = [], []
    for row in reader:  # line_num: the file's line where the row ends (quoted newlines too)
        items.append({k: v for k, v in row.items() if k is not None and v != ""})
        numbers.append(reader.line_num)
    return revenue_rows(items, "line", numbers)


def store_revenue(client: Client, rows: list[Revenue]) -> int:
    now = datetime.now(UTC)
    if rows:
        client.insert("customer_revenue", [r.row(now) for r in rows], column_names=REVENUE_COLUMNS)
    return len(rows)
