"""Outcomes: storing outcome events, and ``outcomes`` (cost per outcome), the value side.

Storage (Faust-free): the worker runs ``kafka.outcome_topic`` through the same pipeline as usage
events (``stream.outcomes.OutcomeProcessor`` validates; dead letters, time bounds, retries, row
isolation and the dead-letter limit as for usage), with :class:`OutcomeStore` as its sink:
:meth:`OutcomeStore.insert` writes entries in one all-or-nothing INSERT with a deduplication
token, safe to retry; ``FINAL`` keeps one row per ``event_id``.

The insight, per UTC day, feature and outcome name: ``outcomes`` (events), ``value`` (sum of
their values), and for the feature's spend that day, all models together (``model = '*'``)
and per model::

    cost_per_outcome = spend_usd / value     (rounded half-even to 18 decimals)

Outcomes join spend on the ``feature`` tag and the day: tag both alike. Scope keys that are not
outcome columns (provider, model, operation) filter outcomes by the tag of that name.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

from spendstream.insights.base import ATTO, Context, InsightResult, dec, num
from spendstream.sinks.entry import OutcomeEntry

if TYPE_CHECKING:  # clickhouse-connect (~140 ms) stays out of reading through a worker
    from clickhouse_connect.driver.client import Client

OUTCOME_COLUMNS = (
    "event_id",
    "event_time",
    "ingested_at",
    "name",
    "value",
    "team",
    "app",
    "env",
    "feature",
    "user",
    "tags",
    "kafka_partition",
    "kafka_offset",
)


class OutcomeStore:
    """Writes outcome entries: the outcome pipeline's sink (``stream.isolation.RowSink``).
    Every call blocks: call it off the event loop."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def insert(self, entries: Sequence[OutcomeEntry]) -> None:
        """Insert ``entries`` in one all-or-nothing INSERT; the same events again are a retry,
        stored once."""
        if not entries:
            return
        now = datetime.now(UTC)
        rows = [
            [
                entry.event.event_id,
                entry.event.event_time,
                now,
                entry.event.name,
                entry.event.value,
                *(entry.event.tags.get(key, "") for key in OUTCOME_SCOPE_COLUMNS),
                entry.event.tags,
                entry.origin.partition,
                entry.origin.offset,
            ]
            for entry in entries
        ]
        ids = sorted(entry.event.event_id for entry in entries)
        token = hashlib.sha256("\n".join(ids).encode()).hexdigest()
        self.client.insert(
            "outcomes",
            rows,
            column_names=OUTCOME_COLUMNS,
            settings={"insert_deduplication_token": token},
        )

    def ping(self) -> None:
        """Raise when ClickHouse cannot answer a trivial query (tells outages from bad rows)."""
        self.client.command("SELECT 1")

    def refresh_rollups(self, times: Sequence[datetime]) -> None:
        """Nothing to refresh: outcomes have no rollups (the insight reads ``outcomes FINAL``)."""


SPEND_SQL = (
    "SELECT toDate(event_time) AS day, feature, model, sum(cost_total) AS spend "
    "FROM ledger FINAL WHERE {where} GROUP BY day, feature, model"
)
OUTCOMES_SQL = (
    "SELECT toDate(event_time) AS day, feature, name, count() AS outcomes, sum(value) AS value "
    "FROM outcomes FINAL WHERE {where} GROUP BY day, feature, name"
)
OUTCOME_SCOPE_COLUMNS = ("team", "app", "env", "feature", "user")


def outcomes(context: Context) -> InsightResult:
    spend: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(dict)
    from_rollups = context.rollup_rows(("feature", "model"), "sum(m_cost_total) AS spend")
    for row in context.rows(SPEND_SQL) if from_rollups is None else from_rollups:
        spend[(str(row["day"])[:10], row["feature"])][row["model"]] = dec(row["spend"])
    out: list[list[Any]] = []
    for row in context.rows(OUTCOMES_SQL, columns=OUTCOME_SCOPE_COLUMNS):
        day, feature = str(row["day"])[:10], row["feature"]
        value, models = dec(row["value"]), spend.get((day, feature), {})
        head = [day, feature, row["name"], num(row["outcomes"]), value]
        total = sum(models.values(), Decimal(0))
        out.append([*head, "*", total, _per(total, value)])
        for model in sorted(models):
            out.append([*head, model, models[model], _per(models[model], value)])
    out.sort(key=lambda r: (r[0], r[1], r[2], r[5] != "*", r[5]))
    columns = ["day", "feature", "name", "outcomes", "value", "model", "spend_usd"]
    return InsightResult("outcomes", [*columns, "cost_per_outcome"], out)


def _per(spend: Decimal, value: Decimal) -> Decimal | None:
    return (spend / value).quantize(ATTO, ROUND_HALF_EVEN) if value else None
