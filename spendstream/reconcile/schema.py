"""The reconciliation table: migration 400 (listed in :mod:`spendstream.worker.schema`).

``invoice_lines`` holds what the provider says we used and owe, one row per natural key
(provider, kind, day, account, api key, model, line item, service tier, context window):

- ``kind`` is ``cost`` (dollars from a cost report), ``usage`` (tokens and requests from a usage
  report) or ``focus`` (a FOCUS bill line: dollars and, when given, tokens).
- ``token_type`` is the canonical type the line prices (``input`` = uncached input,
  ``cache_read``, ``cache_write``, ``output`` incl. reasoning) or ``other`` (web search,
  fine-tuning, anything not priced per token by our ledger).

ReplacingMergeTree on ``version`` with ``is_deleted``: a corrected report writes newer rows for
its days and tombstones for lines it no longer has; reads use ``FINAL`` and skip tombstones.
"""

from __future__ import annotations

from spendstream.sinks.migrations import MONEY, Migration

INVOICE_LINES = f"""
CREATE TABLE IF NOT EXISTS invoice_lines (
    provider LowCardinality(String),
    kind LowCardinality(String),
    day Date,
    account String,
    api_key String,
    model String,
    line_item String,
    service_tier LowCardinality(String),
    context_window LowCardinality(String),
    token_type LowCardinality(String),
    amount_usd {MONEY},
    tokens UInt64,
    requests UInt64,
    report String,
    loaded_at DateTime64(3, 'UTC'),
    version UInt64,
    is_deleted UInt8
) ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMM(day)
ORDER BY (provider, kind, day, account, api_key, model, line_item, service_tier, context_window)
"""

LINE_KEY = (
    "provider",
    "kind",
    "day",
    "account",
    "api_key",
    "model",
    "line_item",
    "service_tier",
    "context_window",
)
LINE_COLUMNS = (
    *LINE_KEY,
    "token_type",
    "amount_usd",
    "tokens",
    "requests",
    "invoice_id",
    "report",
    "loaded_at",
    "version",
    "is_deleted",
)

# Migration 410: the provider's invoice id of a line (a FOCUS bill's ``InvoiceId``), '' when the
# report names none; rows loaded before read as ''.
INVOICE_ID = "ALTER TABLE invoice_lines ADD COLUMN IF NOT EXISTS invoice_id String DEFAULT ''"

MIGRATIONS: tuple[Migration, ...] = (
    Migration(400, "invoice_lines", (INVOICE_LINES,)),
    Migration(410, "invoice_lines_invoice_id", (INVOICE_ID,)),
)
