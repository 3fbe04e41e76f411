"""Price versions: the number every ledger row carries, claimed once per catalog (a worker's
stream) or per re-rating, unique and increasing across every process sharing the database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

MAX_VERSION_CLAIMS = 100
PRICE_VERSION_COLUMNS = (
    "version",
    "kind",
    "catalog_digest",
    "created_at",
    "period_start",
    "period_end",
    "note",
    "claimed_by",
)


def register_price_version(client: Client, catalog_digest: str) -> int:
    """The stream's price version for ``catalog_digest``, registering a new one when needed."""
    found = client.query(
        "SELECT max(version) FROM price_versions FINAL "
        "WHERE kind = 'stream' AND catalog_digest = {digest:String}",
        parameters={"digest": catalog_digest},
    ).result_rows
    if found and found[0][0]:
        return int(found[0][0])
    return next_price_version(client, "stream", catalog_digest)


def next_price_version(
    client: Client,
    kind: str,
    catalog_digest: str,
    period: tuple[datetime, datetime] | None = None,
    note: str = "",
) -> int:
    """Allocate and record the next price version number: unique and increasing across every
    process sharing the ClickHouse database (workers starting, ``reprice`` runs).

    Claim ``max + 1`` by inserting its row with the deduplication token ``price-version:<n>``:
    ClickHouse keeps the first insert of a token and drops the rest, so exactly one claimant's
    row exists; each claimant reads the row back and retries with the next number if it lost.
    """
    claim = uuid.uuid4().hex
    start, end = period if period else (None, None)
    for _ in range(MAX_VERSION_CLAIMS):
        latest = client.query("SELECT max(version) FROM price_versions").result_rows
        version = int(latest[0][0] or 0) + 1
        client.insert(
            "price_versions",
            [[version, kind, catalog_digest, datetime.now(UTC), start, end, note, claim]],
            column_names=PRICE_VERSION_COLUMNS,
            settings={"insert_deduplication_token": f"price-version:{version}"},
        )
        winner = client.query(
            "SELECT claimed_by FROM price_versions WHERE version = {v:UInt32} "
            "ORDER BY created_at LIMIT 1",
            parameters={"v": version},
        ).result_rows
        if winner and winner[0][0] == claim:
            return version
    raise RuntimeError(f"could not claim a price version in {MAX_VERSION_CLAIMS} attempts")
