"""Spend per hour and group of a rule's scope, read from the hour rollups (or the ledger).

Whole hours only, so the smallest hour rollup holding the rule's tags answers exactly (equal
to ``ledger FINAL`` to the last digit, see ``sinks.windows``); a tag no rollup keeps reads
``ledger FINAL`` grouped by hour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from spendstream.anomalies.config import AnomalyRule
from spendstream.anomalies.episodes import Group
from spendstream.sinks.access import Reader
from spendstream.sinks.params import Params, moment
from spendstream.sinks.scopes import column_for, scope_sql
from spendstream.sinks.windows import rollup_tables

Series = dict[datetime, Decimal]


@dataclass
class Hourly:
    """One group's spend and tokens (input and output) per hour; hours without spend absent."""

    spend: Series = field(default_factory=dict)
    tokens: dict[datetime, int] = field(default_factory=dict)


def _source(rule: AnomalyRule, params: Params) -> tuple[str, str, str]:
    """(table, hour expression, time column) for the rule's tags."""
    tables = rollup_tables([*rule.group_by, *rule.scope_filters])
    if tables is None:
        return "ledger", "toStartOfHour(event_time)", "event_time"
    return tables[0], "window_start", "window_start"


def _condition(rule: AnomalyRule, lo: datetime, hi: datetime, params: Params) -> str:
    _, _, time_column = _source(rule, params)
    return (
        f"{time_column} >= {moment(params, lo)} AND {time_column} < {moment(params, hi)} "
        f"AND ({scope_sql(rule.scope_filters, params)})"
    )


def hourly_spend(
    reader: Reader, rule: AnomalyRule, lo: datetime, hi: datetime
) -> dict[Group, Hourly]:
    """Spend and tokens of each group in each hour of ``[lo, hi)`` (whole hours)."""
    params: Params = {}
    table, hour, _ = _source(rule, params)
    columns = [f"{column_for(key, params)} AS g{i}" for i, key in enumerate(rule.group_by)]
    names = [f"g{i}" for i in range(len(rule.group_by))]
    where = _condition(rule, lo, hi, params)
    sql = (
        f"SELECT {hour} AS hour, {', '.join([*columns, 'sum(cost_total) AS spend'])}, "
        "sum(input_tokens + output_tokens) AS tokens "
        f"FROM {table} FINAL WHERE {where} GROUP BY {', '.join(['hour', *names])}"
    )
    found: dict[Group, Hourly] = {}
    for row in reader.query(sql, params).rows:
        at = row[0] if row[0].tzinfo else row[0].replace(tzinfo=UTC)
        group = tuple(zip(rule.group_by, (str(v) for v in row[1:-2]), strict=True))
        hourly = found.setdefault(group, Hourly())
        hourly.spend[at], hourly.tokens[at] = Decimal(row[-2]), int(row[-1])
    return found


def history_start(reader: Reader, rule: AnomalyRule, lo: datetime, hi: datetime) -> datetime | None:
    """The first hour in ``[lo, hi)`` with any spend in the rule's scope (None: no spend)."""
    params: Params = {}
    table, hour, _ = _source(rule, params)
    where = _condition(rule, lo, hi, params)
    rows = reader.query(
        f"SELECT min({hour}), count() FROM {table} FINAL WHERE {where}", params
    ).rows
    if not rows or not rows[0][1]:
        return None
    first: datetime = rows[0][0]
    return first if first.tzinfo else first.replace(tzinfo=UTC)
