"""Prompt length (``prompts``, ``prompt_growth``) and truncation (``truncation``).

prompts, per feature and ISO week (Monday, UTC): events and exact p50/p95 input tokens per
event (``quantileExact``: the element at index floor(level x n) of the sorted values), and
``p50_change_pct`` = (p50 - p50 of the feature's previous week) / previous p50 x 100, when the
previous calendar week has events.

prompt_growth, per feature with events in at least two weeks: its first and last week of the
period, their p50s and ``growth_pct`` = (last p50 - first p50) / first p50 x 100; fastest first.

truncation, per (feature, provider, model): ``truncated_events`` have ``finish_reason =
'length'`` (cut at max_tokens); ``truncated_share_pct`` is of the events that report a finish
reason at all (``reporting_events``), ``truncated_spend_pct`` of the group's spend.

Percentages are rounded half-even to 0.01.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from spendstream.insights.base import Context, InsightResult, dec, num, pct
from spendstream.insights.cells import MERGE, cell_rows, quantile_cell_rows

WEEKS_SQL = (
    "SELECT feature, toMonday(event_time) AS week, count() AS events, "
    "quantileExact(0.5)(input_tokens) AS p50, quantileExact(0.95)(input_tokens) AS p95 "
    "FROM ledger FINAL WHERE {where} AND operation != 'embeddings' "
    "GROUP BY feature, week ORDER BY feature, week"
)

# The same over the insight cells (insights.cells): the exact quantiles merged from the states.
CELL_WEEKS_SQL = (
    "SELECT feature, toMonday(window_start) AS week, sum(m_events) AS events, "
    f"{MERGE}(m_input_quantiles) AS q, q[1] AS p50, q[2] AS p95 "
    "FROM ({cells}) WHERE operation != 'embeddings' GROUP BY feature, week ORDER BY feature, week"
)


def _weeks(context: Context) -> list[list[Any]]:
    rows: list[list[Any]] = []
    previous: dict[str, tuple[date, int]] = {}
    found = quantile_cell_rows(context, CELL_WEEKS_SQL, ("p50", "p95"))
    for row in context.rows(WEEKS_SQL) if found is None else found:
        week = _day(row["week"])
        feature, p50 = row["feature"], num(row["p50"])
        before = previous.get(feature)
        change = None
        if before and before[0] == week - timedelta(days=7):
            change = pct(p50 - before[1], before[1])
        previous[feature] = (week, p50)
        rows.append([feature, week, num(row["events"]), p50, num(row["p95"]), change])
    return rows


def prompts(context: Context) -> InsightResult:
    columns = ["feature", "week", "events", "p50_input_tokens", "p95_input_tokens"]
    return InsightResult("prompts", [*columns, "p50_change_pct"], _weeks(context))


# prompt_growth reads each feature's first and last week only: which they are from the cells'
# sums, then the quantile states of those weeks alone (the middle weeks' are never merged).
CELL_SPAN_SQL = (
    "SELECT feature, min(toMonday(window_start)) AS first, max(toMonday(window_start)) AS last "
    "FROM ({cells}) WHERE operation != 'embeddings' GROUP BY feature"
)
CELL_FEATURE_WEEKS_SQL = CELL_WEEKS_SQL.replace(
    "WHERE operation != 'embeddings'",
    "WHERE operation != 'embeddings' AND feature IN {growth_features:Array(String)}",
)


def _day(value: Any) -> date:
    return date.fromisoformat(str(value)[:10])


def _first_and_last_weeks(context: Context) -> list[list[Any]] | None:
    """``[feature, week, events, p50]`` of each feature's first and last week (one row when
    they are the same), by feature and week; None when the cells cannot answer."""
    spans = cell_rows(context, CELL_SPAN_SQL)
    if spans is None:
        return None
    features: dict[date, list[str]] = defaultdict(list)
    for span in spans:
        for week in {_day(span["first"]), _day(span["last"])}:
            features[week].append(span["feature"])
    rows: list[list[Any]] = []
    since, until = context.window.since, context.window.until
    for week, names in features.items():
        start = datetime(week.year, week.month, week.day, tzinfo=UTC)
        part = replace(
            context.window, since=max(since, start), until=min(until, start + timedelta(days=7))
        )
        found = quantile_cell_rows(
            replace(context, window=part),
            CELL_FEATURE_WEEKS_SQL,
            ("p50", "p95"),
            {"growth_features": names},
        )
        for row in found or ():
            rows.append([row["feature"], _day(row["week"]), num(row["events"]), num(row["p50"])])
    return sorted(rows, key=lambda row: (row[0], row[1]))


def prompt_growth(context: Context) -> InsightResult:
    first: dict[str, list[Any]] = {}
    last: dict[str, list[Any]] = {}
    found = _first_and_last_weeks(context)
    for row in _weeks(context) if found is None else found:
        first.setdefault(row[0], row)
        last[row[0]] = row
    rows = [
        [feature, start[1], start[3], last[feature][1], last[feature][3]]
        for feature, start in first.items()
        if last[feature][1] != start[1]
    ]
    for row in rows:
        row.append(pct(row[4] - row[2], row[2]))
    rows.sort(key=lambda r: (r[5] is None, -(r[5] or 0), r[0]))
    columns = ["feature", "first_week", "first_p50", "last_week", "last_p50", "growth_pct"]
    return InsightResult("prompt_growth", columns, rows)


TRUNCATION_SQL = (
    "SELECT feature, provider, model, count() AS events, "
    "countIf(finish_reason != '') AS reporting_events, "
    "countIf(finish_reason = 'length') AS truncated_events, sum(cost_total) AS cost_usd, "
    "sumIf(cost_total, finish_reason = 'length') AS truncated_cost_usd "
    "FROM ledger FINAL WHERE {where} GROUP BY feature, provider, model"
)

CELL_TRUNCATION_SQL = (
    "SELECT feature, provider, model, sum(m_events) AS events, "
    "sum(m_reporting_events) AS reporting_events, sum(m_truncated_events) AS truncated_events, "
    "sum(m_cost_total) AS cost_usd, sum(m_truncated_cost) AS truncated_cost_usd "
    "FROM ({cells}) GROUP BY feature, provider, model"
)


def truncation(context: Context) -> InsightResult:
    rows = []
    found = cell_rows(context, CELL_TRUNCATION_SQL)
    for row in context.rows(TRUNCATION_SQL) if found is None else found:
        events, reporting, cut = (
            num(row[k]) for k in ("events", "reporting_events", "truncated_events")
        )
        cost, cut_cost = dec(row["cost_usd"]), dec(row["truncated_cost_usd"])
        rows.append(
            [
                row["feature"],
                row["provider"],
                row["model"],
                events,
                reporting,
                cut,
                pct(cut, reporting),
                cost,
                cut_cost,
                pct(cut_cost, cost),
            ]
        )
    rows.sort(key=lambda r: (-r[8], -r[5], r[0], r[1], r[2]))
    columns = [
        "feature",
        "provider",
        "model",
        "events",
        "reporting_events",
        "truncated_events",
        "truncated_share_pct",
        "cost_usd",
        "truncated_cost_usd",
        "truncated_spend_pct",
    ]
    return InsightResult("truncation", columns, rows)
