"""Outcomes: storing outcome events, and ``outcomes`` (cost per outcome), the value side.

Storage (Faust-free; the worker feeds it from ``kafka.outcome_topic``): :meth:`OutcomeStore.parse`
validates payloads (:func:`spendstream.events.parse_outcome`; a bad one is returned with its
reason for the dead-letter topic) and :meth:`OutcomeStore.write` inserts them in one
all-or-nothing INSERT with a deduplication token, safe to retry; ``FINAL`` keeps one row per
``event_id``.

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
from typing import Any

from clickhouse_connect.driver.client import Client

from spendstream.events import EventError, OutcomeEvent, parse_outcome
from spendstream.insights.base import ATTO, Context, InsightResult, dec, num

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
    """Validates and writes outcome events. ``write`` blocks: call it off the event loop."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @staticmethod
    def parse(payload: bytes) -> OutcomeEvent | str:
        """The outcome event of ``payload``, or the reason it is refused."""
        try:
            return parse_outcome(payload)
        except EventError as exc:
            return exc.reason

    def write(self, outcomes: Sequence[tuple[OutcomeEvent, int, int]]) -> None:
        if not outcomes:
            return
        now = datetime.now(UTC)
        rows = [
            [
                event.event_id,
                event.event_time,
                now,
                event.name,
                event.value,
                *(event.tags.get(key, "") for key in ("team", "app", "env", "feature", "user")),
                event.tags,
                partition,
                offset,
            ]
            for event, partition, offset in outcomes
        ]
        ids = sorted(event.event_id for event, _, _ in outcomes)
        token = hashlib.sha256("\n".join(ids).encode()).hexdigest()
        self.client.insert(
            "outcomes",
            rows,
            column_names=OUTCOME_COLUMNS,
            settings={"insert_deduplication_token": token},
        )


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
