"""Re-rating: recompute a period's costs under the current price catalog as a new price version.

Contract of :func:`reprice` (``spendstream reprice``):

- Reads the period ``[since, until)`` from ``ledger FINAL`` one UTC day at a time, rebuilds each
  :class:`~spendstream.events.UsageEvent` from its row (the ledger keeps every field an event
  has) and rates it with the given pricer.
- Rows whose rating changes (any cost, ``priced``, ``price_ref`` or ``unpriced_reason``) are
  superseded: the old row is copied unchanged into ``ledger_rerated`` first, then the re-rated
  row is inserted into ``ledger`` with the new ``price_version`` (same event, original
  ``ingested_at`` and Kafka origin), so under ``FINAL`` it replaces the old one. Rows whose
  rating is unchanged are left alone. The rollup windows of changed rows are recomputed.
- The new version is allocated with ``next_price_version(kind='reprice', period)`` when the
  first changed row is found; a run that changes nothing allocates none.
- Returns the old and new cost per provider, model and team over *all* rows of the period.
- ``dry_run`` computes the same differences and writes nothing.

A crash mid-run leaves whole days done (each day is two INSERTs, ``ledger_rerated`` first);
running again finishes the rest under a newer version. A worker still pricing with the old
catalog would price *new* events of the period the old way: restart workers on the new catalog
before repricing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from spendstream.events import AGENT_FIELDS, UsageEvent
from spendstream.logs import get_logger
from spendstream.pricing import Pricer, Rating
from spendstream.sinks.ledger import LEDGER_COLUMNS, KafkaOrigin, LedgerEntry, LedgerWriter
from spendstream.sinks.migrations import COST_COLUMNS
from spendstream.sinks.price_versions import next_price_version

log = get_logger(__name__)

RATING_FIELDS = (
    "priced",
    "price_ref",
    "unpriced_reason",
    *COST_COLUMNS,
    "cost_avoided",
    "cost_cache_write_1h",
    "unit_costs",
)
SELECT_ROWS = (
    f"SELECT {', '.join(LEDGER_COLUMNS)} FROM ledger FINAL "
    "WHERE event_time >= {lo:DateTime64(3)} AND event_time < {hi:DateTime64(3)} "
    "ORDER BY event_time, event_id"
)


@dataclass
class CostDiff:
    """Old and new cost of one provider/model/team over the period."""

    provider: str
    model: str
    team: str
    events: int = 0
    changed: int = 0
    old_cost: Decimal = Decimal(0)
    new_cost: Decimal = Decimal(0)

    @property
    def difference(self) -> Decimal:
        return self.new_cost - self.old_cost


@dataclass
class RepriceResult:
    """What a reprice run did; ``version`` is None when nothing changed or on a dry run."""

    since: datetime
    until: datetime
    catalog_digest: str
    version: int | None = None
    events: int = 0
    changed: int = 0
    diffs: dict[tuple[str, str, str], CostDiff] = field(default_factory=dict)

    @property
    def old_total(self) -> Decimal:
        return sum((diff.old_cost for diff in self.diffs.values()), Decimal(0))

    @property
    def new_total(self) -> Decimal:
        return sum((diff.new_cost for diff in self.diffs.values()), Decimal(0))

    def rows(self) -> list[CostDiff]:
        """Differences sorted by provider, model and team."""
        return [self.diffs[key] for key in sorted(self.diffs)]


def event_from_row(row: dict[str, Any]) -> UsageEvent:
    """The usage event a ledger row was written from (the inverse of ``LedgerEntry.row``)."""
    moment: datetime = row["event_time"]
    # agent fields (migration 1100): a re-rated row keeps its run, session and customer
    agent: dict[str, Any] = {name: row[name] or None for name in AGENT_FIELDS}
    return UsageEvent(
        event_id=row["event_id"],
        event_time=moment if moment.tzinfo else moment.replace(tzinfo=UTC),
        provider=row["provider"],
        model=row["model"],
        response_model=row["response_model"] or None,
        operation=row["operation"],
        request_count=int(row["request_count"]),
        batch=bool(row["batch"]),
        latency_ms=row["latency_ms"],
        status=row["status"],
        error_type=row["error_type"] or None,
        provider_cost_usd=row["provider_cost_usd"],
        tags=dict(row["tags"]),
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        cache_read_tokens=int(row["cache_read_tokens"]),
        cache_write_tokens=int(row["cache_write_tokens"]),
        reasoning_tokens=int(row["reasoning_tokens"]),
        cache_write_1h_tokens=int(row["cache_write_1h_tokens"]),  # migration 1012
        prompt_hash=row["prompt_hash"] or None,
        response_cached=bool(row["response_cached"]),
        finish_reason=row["finish_reason"] or None,
        max_tokens=None if row["max_tokens"] is None else int(row["max_tokens"]),
        units=dict(row["unit_quantities"]),
        platform=row["platform"] or None,
        region=row["region"] or None,
        **agent,
    )


def _rating_of(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[name] for name in RATING_FIELDS)


def _new_rating(rating: Rating) -> tuple[Any, ...]:
    costs = (
        getattr(rating, name) for name in (*COST_COLUMNS, "cost_avoided", "cost_cache_write_1h")
    )
    units = {unit.unit: unit.cost for unit in rating.units}
    return (rating.priced, rating.price_ref, rating.unpriced_reason, *costs, units)


def _days(since: datetime, until: datetime) -> Iterator[tuple[datetime, datetime]]:
    """``[since, until)`` cut at UTC midnights."""
    start = since
    while start < until:
        midnight = datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(days=1)
        end = min(midnight, until)
        yield start, end
        start = end


def reprice(
    client: Client, pricer: Pricer, since: datetime, until: datetime, dry_run: bool = False
) -> RepriceResult:
    """Re-rate ``[since, until)`` under ``pricer`` (see the module docstring for the contract)."""
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    if until <= since:
        raise ValueError(f"until ({until.isoformat()}) must be after since ({since.isoformat()})")
    result = RepriceResult(since, until, pricer.catalog_digest)
    for lo, hi in _days(since, until):
        query = client.query(SELECT_ROWS, parameters={"lo": lo, "hi": hi})
        old_rows: list[list[Any]] = []
        entries: list[tuple[LedgerEntry, datetime]] = []
        for values in query.result_rows:
            row = dict(zip(LEDGER_COLUMNS, values, strict=True))
            event = event_from_row(row)
            rating = pricer.rate(event)
            key = (event.provider, event.model, event.tag("team"))
            diff = result.diffs.setdefault(key, CostDiff(*key))
            diff.events += 1
            diff.old_cost += row["cost_total"]
            diff.new_cost += rating.cost_total
            if _rating_of(row) == _new_rating(rating):
                continue
            diff.changed += 1
            old_rows.append(list(values))
            origin = KafkaOrigin(row["kafka_topic"], row["kafka_partition"], row["kafka_offset"])
            entries.append((LedgerEntry(event, rating, origin), row["ingested_at"]))
        result.events += len(query.result_rows)
        result.changed += len(entries)
        if entries and not dry_run:
            if result.version is None:
                result.version = next_price_version(
                    client, "reprice", pricer.catalog_digest, (since, until), "spendstream reprice"
                )
            _supersede(client, result.version, old_rows, entries)
    log.info(
        "reprice done",
        since=since.isoformat(),
        until=until.isoformat(),
        events=result.events,
        changed=result.changed,
        version=result.version,
        dry_run=dry_run,
    )
    return result


def _supersede(
    client: Client,
    version: int,
    old_rows: list[list[Any]],
    entries: list[tuple[LedgerEntry, datetime]],
) -> None:
    """Keep the old rows in ``ledger_rerated``, write the new ones, refresh their rollups."""
    client.insert("ledger_rerated", old_rows, column_names=LEDGER_COLUMNS)
    token = hashlib.sha256(
        f"reprice:{version}\n".encode()
        + "\n".join(sorted(entry.event.event_id for entry, _ in entries)).encode()
    ).hexdigest()
    client.insert(
        "ledger",
        [entry.row(version, ingested_at) for entry, ingested_at in entries],
        column_names=LEDGER_COLUMNS,
        settings={"insert_deduplication_token": token},
    )
    LedgerWriter(client, version).refresh_rollups([entry.event.event_time for entry, _ in entries])
