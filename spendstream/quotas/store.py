"""Reads and writes of the quota tables, and quota usage from ``ledger FINAL``. Blocking
(clickhouse-connect): call from threads.

Usage always comes from the deduplicated ledger (``FINAL``: one row per event id, the newest
rating), never from the messages a batch carried, so a redelivered or replayed event can never
count twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from clickhouse_connect.driver.client import Client

from spendstream.decisions import QuotaDecision, group_key
from spendstream.quotas.config import QuotaConfig
from spendstream.quotas.schema import DECISION_COLUMNS, OVERRIDE_COLUMNS, TRANSITION_COLUMNS
from spendstream.sinks.access import ClientReader
from spendstream.sinks.params import Params, moment, string, strings
from spendstream.sinks.scopes import column_for, scope_sql, unit_map_sql

# What each unit sums in the ledger (tokens: all input and output tokens, cached included).
UNIT_SQL = {
    "usd": "sum(cost_total)",
    "tokens": "sum(input_tokens + output_tokens)",
    "requests": "sum(request_count)",
    "steps": "count()",  # one step per recorded event (ledger FINAL: one row per event)
}


def usage_sql(unit: str, params: Params) -> str:
    """The SQL aggregate a quota on ``unit`` sums: :data:`UNIT_SQL`, or for a usage unit its
    quantity (variants included) from the ledger's ``unit_quantities`` map, exactly."""
    return UNIT_SQL.get(unit) or f"sum({unit_map_sql(unit, 'unit_quantities', params)})"


@dataclass(frozen=True, slots=True)
class Override:
    """An override (``kind = "limit"``) or reset (``kind = "reset"``) of one quota key."""

    override_id: str
    quota: str
    key: str
    kind: str
    limit: Decimal | None
    baseline: Decimal
    until: datetime
    reason: str
    created_by: str
    created_at: datetime

    def row(self) -> list[object]:
        return [getattr(self, name) for name in OVERRIDE_COLUMNS]


@dataclass(frozen=True, slots=True)
class Transition:
    transition_id: str
    quota: str
    key: str
    kind: str
    used: Decimal
    limit: Decimal
    unit: str
    period_start: datetime
    epoch: str
    at: datetime
    reason: str
    version: int

    def row(self) -> list[object]:
        return [getattr(self, name) for name in TRANSITION_COLUMNS]


def transition_id(quota: str, key: str, period_start: datetime, kind: str, epoch: str) -> str:
    text = f"{quota}|{key}|{period_start.astimezone(UTC).isoformat()}|{kind}|{epoch}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def version_of(decision: QuotaDecision) -> int:
    """Row version: ``as_of`` in microseconds, so the newest reading wins across workers."""
    return int(decision.as_of.timestamp() * 1_000_000)


class QuotaStore:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.reader = ClientReader(client)

    # --- usage --------------------------------------------------------------------------
    def usage(
        self,
        quota: QuotaConfig,
        start: datetime,
        end: datetime,
        keys: Iterable[str] | None = None,
    ) -> dict[str, Decimal]:
        """Usage per group key in ``[start, end)`` (only ``keys`` when given)."""
        params: Params = {}
        columns = [column_for(name, params) for name in quota.group_by]
        where = [
            f"event_time >= {moment(params, start)}",
            f"event_time < {moment(params, end)}",
            scope_sql(quota.scope_filters, params),
        ]
        wanted = sorted(set(keys)) if keys is not None else None
        if wanted is not None and columns:
            where.append(f"{group_key_sql(quota.group_by, params)} IN {strings(params, wanted)}")
        group = f"GROUP BY {', '.join(columns)}" if columns else ""
        select = ", ".join([*columns, usage_sql(quota.unit, params)])
        rows = self.reader.query(
            f"SELECT {select} FROM ledger FINAL WHERE {' AND '.join(where)} {group}", params
        ).rows
        found = {
            group_key(tuple(quota.group_by), [str(v) for v in row[:-1]]): Decimal(str(row[-1]))
            for row in rows
        }
        if wanted is not None:
            return {key: found.get(key, Decimal(0)) for key in wanted}
        return found

    # --- decisions ----------------------------------------------------------------------
    def load_decisions(self) -> list[QuotaDecision]:
        result = self.reader.query(
            f"SELECT {', '.join(DECISION_COLUMNS)} FROM quota_decisions FINAL"
        )
        decisions = []
        for values in result.records():
            for name in ("period_start", "resets_at", "as_of", "override_until"):
                if values[name] is not None:
                    values[name] = utc(values[name])
            decisions.append(QuotaDecision.model_validate(values))
        return decisions

    def put_decisions(self, decisions: Sequence[QuotaDecision]) -> None:
        if not decisions:
            return
        rows = [
            [*(getattr(d, name) for name in DECISION_COLUMNS[:-1]), version_of(d)]
            for d in decisions
        ]
        self.client.insert("quota_decisions", rows, column_names=DECISION_COLUMNS)

    # --- overrides ----------------------------------------------------------------------
    def active_overrides(self, now: datetime) -> dict[tuple[str, str, str], Override]:
        """The latest override and reset per (quota, key, kind) still in effect at ``now``."""
        params: Params = {}
        result = self.reader.query(
            f"SELECT {', '.join(OVERRIDE_COLUMNS)} FROM quota_overrides WHERE "
            f"until > {moment(params, now)} ORDER BY created_at",
            params,
        )
        active: dict[tuple[str, str, str], Override] = {}
        for values in result.records():
            for name in ("until", "created_at"):
                values[name] = utc(values[name])
            if values["limit"] is not None:
                values["limit"] = Decimal(str(values["limit"]))
            values["baseline"] = Decimal(str(values["baseline"]))
            override = Override(**values)
            active[(override.quota, override.key, override.kind)] = override
        return active

    def overrides(self, where: str = "1", params: Params | None = None) -> list[list[object]]:
        """Override rows matching ``where`` (its values bound in ``params``), oldest first."""
        return self.reader.query(
            f"SELECT {', '.join(OVERRIDE_COLUMNS)} FROM quota_overrides WHERE {where} "
            "ORDER BY created_at",
            params,
        ).rows

    def put_override(self, override: Override) -> None:
        self.client.insert("quota_overrides", [override.row()], column_names=OVERRIDE_COLUMNS)

    # --- transitions --------------------------------------------------------------------
    def last_transitions(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Transition]:
        """The latest stored transition of each (quota, key) that has one."""
        if not keys:
            return {}
        result = self.reader.query(
            f"SELECT {', '.join(TRANSITION_COLUMNS)} FROM quota_transitions FINAL "
            "WHERE (quota, key) IN {pairs:Array(Tuple(String, String))} ORDER BY version",
            {"pairs": sorted(keys)},
        )
        found: dict[tuple[str, str], Transition] = {}
        for values in result.records():
            for name in ("period_start", "at"):
                values[name] = utc(values[name])
            for name in ("used", "limit"):
                values[name] = Decimal(str(values[name]))
            transition = Transition(**values)
            found[(transition.quota, transition.key)] = transition
        return found

    def put_transition(self, transition: Transition) -> None:
        self.client.insert(
            "quota_transitions",
            [transition.row()],
            column_names=TRANSITION_COLUMNS,
            settings={"insert_deduplication_token": f"transition:{transition.transition_id}"},
        )


def group_key_sql(group_by: Sequence[str], params: Params) -> str:
    """The SQL expression building :func:`spendstream.decisions.group_key` from ledger rows
    (names bound in ``params``)."""
    parts = [
        f"concat({string(params, name + '=')}, {column_for(name, params)})" for name in group_by
    ]
    if len(parts) == 1:
        return parts[0]
    return "concat(" + ", ',', ".join(parts) + ")"
