"""What the stream hands its sinks: a validated event (priced, for the ledger) and where it was
read from.

Free of ClickHouse and Faust, so the stream's processor and the ledger writer both import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from spendstream.events import OutcomeEvent, UsageEvent
from spendstream.pricing import Rating
from spendstream.sinks.migrations import COST_COLUMNS, TOKEN_COLUMNS, UNIT_LEDGER_COLUMNS

LEDGER_COLUMNS = (
    "event_id",
    "event_time",
    "ingested_at",
    "provider",
    "model",
    "response_model",
    "operation",
    "team",
    "app",
    "env",
    "feature",
    "user",
    "tags",
    *TOKEN_COLUMNS,
    "request_count",
    "batch",
    "latency_ms",
    "status",
    "error_type",
    "provider_cost_usd",
    "priced",
    "unpriced_reason",
    "price_ref",
    "price_version",
    *COST_COLUMNS,
    "cost_total",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    *(name for name, _kind in UNIT_LEDGER_COLUMNS),
    "prompt_hash",
    "response_cached",
    "finish_reason",
    "max_tokens",
    "cost_avoided",
    "platform",  # migration 80: the placement the call was priced for
    "region",
)


@dataclass(frozen=True, slots=True)
class KafkaOrigin:
    """Where an event was read from (kept in the ledger for audits). ``index`` is the line of a
    multi-event message (None for a single-event message); it is not stored in the ledger but
    names the line in a dead letter if the ledger rejects the event."""

    topic: str = ""
    partition: int = 0
    offset: int = 0
    index: int | None = None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """A validated event with its rating, ready for the ledger."""

    event: UsageEvent
    rating: Rating
    origin: KafkaOrigin = KafkaOrigin()

    def row(self, price_version: int, ingested_at: datetime) -> list[Any]:
        event, rating = self.event, self.rating
        return [
            event.event_id,
            event.event_time,
            ingested_at,
            event.provider,
            event.model,
            event.response_model or "",
            event.operation,
            event.tag("team"),
            event.tag("app"),
            event.tag("env"),
            event.tag("feature"),
            event.tag("user"),
            event.tags,
            event.input_tokens,
            event.output_tokens,
            event.cache_read_tokens,
            event.cache_write_tokens,
            event.reasoning_tokens,
            event.request_count,
            event.batch,
            event.latency_ms,
            event.status,
            event.error_type or "",
            event.provider_cost_usd,
            rating.priced,
            rating.unpriced_reason,
            rating.price_ref,
            price_version,
            rating.cost_input,
            rating.cost_output,
            rating.cost_cache_read,
            rating.cost_cache_write,
            rating.cost_reasoning,
            rating.cost_total,
            self.origin.topic,
            self.origin.partition,
            self.origin.offset,
            # UNIT_LEDGER_COLUMNS: quantities of every unit; costs and refs of priced units
            {unit: quantity for unit, quantity in sorted(event.units.items())},
            {unit.unit: unit.cost for unit in rating.units},
            {unit.unit: unit.price_ref for unit in rating.units},
            rating.cost_units,
            event.prompt_hash or "",
            event.response_cached,
            event.finish_reason or "",
            event.max_tokens,
            rating.cost_avoided,
            rating.platform,
            rating.region,
        ]


@dataclass(frozen=True, slots=True)
class OutcomeEntry:
    """A validated outcome event, ready for the ``outcomes`` table."""

    event: OutcomeEvent
    origin: KafkaOrigin = KafkaOrigin()
