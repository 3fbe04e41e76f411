"""Loading reports: saved files (``reconcile import``) or the admin APIs (``reconcile fetch``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from spendstream.reconcile.fetch import AdminClient
from spendstream.reconcile.focus_bill import parse_focus_files
from spendstream.reconcile.lines import ReportError
from spendstream.reconcile.providers import load_json, parse_pages
from spendstream.reconcile.store import InvoiceStore, LoadResult

API_PROVIDERS = ("openai", "anthropic")


def import_files(
    store: InvoiceStore, provider: str, paths: Sequence[Path]
) -> list[tuple[str, LoadResult]]:
    """Load saved API responses (every page, as one report) or a FOCUS bill (``.csv``,
    ``.parquet``: every file as parts of one bill, so a day split over two files keeps both
    parts). ``provider`` names the ledger provider they bill."""
    results: list[tuple[str, LoadResult]] = []
    pages = [path for path in paths if path.suffix.lower() == ".json"]
    bills = [path for path in paths if path.suffix.lower() != ".json"]
    if pages:
        if provider not in API_PROVIDERS:
            raise ReportError(
                f"--provider {provider}: JSON API responses are read for openai or anthropic; "
                "bills of other providers come as FOCUS .csv or .parquet files"
            )
        parsed = parse_pages(provider, [(str(path), load_json(path)) for path in pages])
        name = ",".join(path.name for path in pages)
        results.append((name, store.load(parsed, f"import:{name}"[:500])))
    if bills:
        name = ",".join(path.name for path in bills)
        parsed = parse_focus_files(provider, bills)
        results.append((name, store.load(parsed, f"import:{name}"[:500])))
    return results


def fetch_reports(
    store: InvoiceStore, client: AdminClient, since: datetime, until: datetime
) -> list[tuple[str, LoadResult]]:
    """Fetch every cost and usage report of ``[since, until)`` and load each."""
    results = []
    for endpoint, pages in client.reports(since, until):
        where = f"{client.provider} {endpoint.name}"
        parsed = parse_pages(client.provider, [(where, page) for page in pages], endpoint.kind)
        results.append((endpoint.name, store.load(parsed, f"fetch:{where}")))
    return results
