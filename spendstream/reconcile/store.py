"""Writing and reading ``invoice_lines``. Blocking (clickhouse-connect).

Load contract (:meth:`InvoiceStore.load`): a report replaces, for each (provider, kind, day) it
covers, every line stored before. Lines equal to the stored ones are not written again, so
loading the same report twice changes nothing (not even a row version); a corrected report
writes its changed lines with a newer version and a tombstone for each line it dropped.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from spendstream.reconcile.lines import InvoiceLine, LineKey
from spendstream.reconcile.providers import Bucket, Parsed
from spendstream.reconcile.schema import LINE_COLUMNS, LINE_KEY
from spendstream.sinks.access import ClientReader, QueryResult, Reader

SELECT_LINES = (
    f"SELECT {', '.join(LINE_KEY)}, token_type, amount_usd, tokens, requests, invoice_id "
    "FROM invoice_lines FINAL WHERE is_deleted = 0"
)


@dataclass(frozen=True)
class LoadResult:
    """Per bucket: ``new`` (nothing stored before), ``replaced`` or ``unchanged``."""

    new: int
    replaced: int
    unchanged: int
    lines_written: int
    lines_removed: int


def _line(row: Any) -> InvoiceLine:
    (provider, kind, day, account, api_key, model, item, tier, window) = row[:9]
    token_type, amount, tokens, requests, invoice_id = row[9:]
    return InvoiceLine(
        provider=provider,
        kind=kind,
        # Direct reads give a date; reads through the worker its ISO string.
        day=day if isinstance(day, date) else date.fromisoformat(str(day)[:10]),
        model=model,
        line_item=item,
        token_type=token_type,
        account=account,
        api_key=api_key,
        service_tier=tier,
        context_window=window,
        amount_usd=Decimal(str(amount)).normalize(),
        tokens=int(tokens),
        requests=int(requests),
        invoice_id=str(invoice_id or ""),
    )


def _same(a: InvoiceLine, b: InvoiceLine) -> bool:
    return a.values == b.values


STATUS_SQL = (
    "SELECT provider, kind, min(day) AS first_day, max(day) AS last_day, "
    "uniqExact(day) AS days, count() AS lines, sum(amount_usd) AS amount_usd, "
    "sum(tokens) AS tokens, max(loaded_at) AS last_loaded "
    "FROM invoice_lines FINAL WHERE is_deleted = 0 GROUP BY provider, kind ORDER BY provider, kind"
)


def loaded_reports(reader: Reader) -> QueryResult:
    """What is loaded: per provider and kind, the days covered, lines, dollars and tokens."""
    return reader.query(STATUS_SQL)


def read_lines(
    reader: Reader,
    start: date,
    end: date,
    provider: str | None = None,
    kinds: tuple[str, ...] = (),
) -> list[InvoiceLine]:
    """Stored lines with ``start <= day < end`` (newest version of each key), sorted by key."""
    sql = SELECT_LINES + " AND day >= {start:Date} AND day < {end:Date}"
    params: dict[str, Any] = {"start": start.isoformat(), "end": end.isoformat()}
    if provider:
        sql += " AND provider = {provider:String}"
        params["provider"] = provider
    if kinds:
        sql += " AND kind IN {kinds:Array(String)}"
        params["kinds"] = list(kinds)
    sql += f" ORDER BY {', '.join(LINE_KEY)}"
    return [_line(row) for row in reader.query(sql, params).rows]


class InvoiceStore:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.reader = ClientReader(client)

    def lines(
        self, start: date, end: date, provider: str | None = None, kinds: tuple[str, ...] = ()
    ) -> list[InvoiceLine]:
        """:func:`read_lines` through this store's client."""
        return read_lines(self.reader, start, end, provider, kinds)

    def _stored(self, buckets: set[Bucket]) -> dict[Bucket, dict[LineKey, InvoiceLine]]:
        found: dict[Bucket, dict[LineKey, InvoiceLine]] = defaultdict(dict)
        if not buckets:
            return found
        days = sorted({day for _, _, day in buckets})
        for provider in sorted({p for p, _, _ in buckets}):
            for line in self.lines(days[0], date.fromordinal(days[-1].toordinal() + 1), provider):
                bucket = (line.provider, line.kind, line.day)
                if bucket in buckets:
                    found[bucket][line.key] = line
        return found

    def load(self, parsed: Parsed, report: str) -> LoadResult:
        """Store a parsed report, replacing the buckets it covers (see the module contract)."""
        stored = self._stored(parsed.buckets)
        incoming: dict[Bucket, dict[LineKey, InvoiceLine]] = defaultdict(dict)
        for line in parsed.lines:
            incoming[(line.provider, line.kind, line.day)][line.key] = line
        version = time.time_ns()
        now = datetime.now(UTC)
        rows: list[list[Any]] = []
        new = replaced = unchanged = removed = 0
        for bucket in sorted(parsed.buckets):
            before, after = stored.get(bucket, {}), incoming.get(bucket, {})
            changed = [
                line
                for key, line in after.items()
                if key not in before or not _same(before[key], line)
            ]
            dropped = [line for key, line in before.items() if key not in after]
            if not changed and not dropped:
                unchanged += 1
                continue
            if before:
                replaced += 1
            else:
                new += 1
            rows += [self._row(line, report, now, version, deleted=False) for line in changed]
            rows += [self._row(line, report, now, version, deleted=True) for line in dropped]
            removed += len(dropped)
        if rows:
            self.client.insert("invoice_lines", rows, column_names=LINE_COLUMNS)
        return LoadResult(new, replaced, unchanged, len(rows) - removed, removed)

    @staticmethod
    def _row(
        line: InvoiceLine, report: str, now: datetime, version: int, deleted: bool
    ) -> list[Any]:
        return [
            *line.key,
            line.token_type,
            line.amount_usd,
            line.tokens,
            line.requests,
            line.invoice_id,
            report,
            now,
            version,
            1 if deleted else 0,
        ]
