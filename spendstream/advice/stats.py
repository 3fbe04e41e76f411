"""The recommendations' statistics: per (feature, provider, model) over the period, the spend,
traffic, token quantiles (p50/p95 of input and output tokens), teams and apps.

Read through a pool of clients, over the insight cells (``insights.cells``), they are three
reads that the pool runs at the same time as the insights (``sinks.access.read_at_once``): the
merged quantile states of input tokens, those of output tokens (together most of the time:
every event's counts, merged and sorted) and the sums with the teams and apps;
:func:`joined_stats` puts them together by key. Apart, the two merges run on two threads beside
the other reads instead of one after the other inside one query. Should the parts disagree on
the keys (the cells refreshed between the reads), :func:`joined_stats` reads them again as one
query (:func:`stats_rows`). A scope the cells lack reads the ledger, and one client reads the
cells, in one query.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from spendstream.insights import models
from spendstream.insights.base import Context
from spendstream.insights.cells import MERGE, answers, cell_rows, quantile_cell_rows
from spendstream.sinks.access import concurrency

Key = tuple[str, str, str]
Rows = list[dict[str, Any]]
KEY = "feature, provider, model"

# Per (feature, provider, model): the scope's spend, traffic and token quantiles.
STATS_SQL = (
    f"SELECT {KEY}, count() AS events, sum(request_count) AS requests, "
    "sum(cost_total) AS cost_usd, "
    "sum(cost_input + cost_cache_read + cost_cache_write) AS input_cost_usd, "
    f"countIf(NOT priced) AS unpriced_events{models.QUANTILES}, "
    "arraySort(groupUniqArray(team)) AS teams, arraySort(groupUniqArray(app)) AS apps "
    f"FROM ledger FINAL WHERE {{where}} GROUP BY {KEY}"
)


# The same over the insight cells: sums, teams and apps, and ``quantiles`` (the one query's
# models.CELL_QUANTILES, or none: the pool reads them apart, below).
def _cell_stats_sql(quantiles: str) -> str:
    return (
        f"SELECT {KEY}, sum(m_events) AS events, sum(m_requests) AS requests, "
        "sum(m_cost_total) AS cost_usd, "
        "sum(m_cost_input) + sum(m_cost_cache_read) + sum(m_cost_cache_write) AS input_cost_usd, "
        f"sumIf(m_events, NOT priced) AS unpriced_events{quantiles}, "
        "arraySort(groupUniqArray(team)) AS teams, arraySort(groupUniqArrayMerge(m_apps)) AS apps "
        f"FROM ({{cells}}) GROUP BY {KEY}"
    )


CELL_SUMS_SQL = _cell_stats_sql("")


def _token_sql(tokens: str, suffix: str) -> str:
    """p50 and p95 of ``tokens`` (input, output) merged from the cells' states."""
    return (
        f"SELECT {KEY}, {MERGE}(m_{tokens}_quantiles) AS q_{suffix}, "
        f"q_{suffix}[1] AS p50_{suffix}, q_{suffix}[2] AS p95_{suffix} "
        f"FROM ({{cells}}) GROUP BY {KEY}"
    )


# Each quantile read and the columns it gives (quantile_cell_rows reads the narrow states).
CELL_TOKEN_SQL = {("p50_in", "p95_in"): _token_sql("input", "in")}
CELL_TOKEN_SQL[("p50_out", "p95_out")] = _token_sql("output", "out")
assert {name for names in CELL_TOKEN_SQL for name in names} == set(models.TOKEN_QUANTILES)
# All in one query (the sums' SELECT with the quantiles of models.CELL_QUANTILES).
CELL_STATS_SQL = _cell_stats_sql(models.CELL_QUANTILES)


def stats_rows(context: Context) -> Rows:
    """The statistics in one query: over the cells, else the ledger."""
    found = quantile_cell_rows(context, CELL_STATS_SQL, models.TOKEN_QUANTILES)
    return context.rows(STATS_SQL) if found is None else found


def _cells(context: Context, sql: str, quantiles: tuple[str, ...]) -> Rows:
    found = quantile_cell_rows(context, sql, quantiles) if quantiles else cell_rows(context, sql)
    if found is None:  # answers() said they answer: only a bug gets here
        raise RuntimeError("the insight cells cannot answer this context")
    return found


def stats_reads(context: Context) -> list[Callable[[], Rows]]:
    """The reads whose results :func:`joined_stats` puts together, the slowest first."""
    if not answers(context) or concurrency(context.reader) <= 1:
        return [partial(stats_rows, context)]  # apart they would only queue one after another
    found = [partial(_cells, context, sql, names) for names, sql in CELL_TOKEN_SQL.items()]
    return [*found, partial(_cells, context, CELL_SUMS_SQL, ())]


def _key(row: dict[str, Any]) -> Key:
    return (row["feature"], row["provider"], row["model"])


def joined_stats(context: Context, parts: Sequence[Rows]) -> Rows:
    """One row per key with the columns of every part of :func:`stats_reads`."""
    if len(parts) == 1:
        return parts[0]
    keys = [{_key(row) for row in part} for part in parts]
    if any(found != keys[0] for found in keys[1:]):
        return stats_rows(context)  # the cells changed between the reads: once more, at once
    by_key: dict[Key, dict[str, Any]] = {}
    for part in parts:
        for row in part:
            by_key.setdefault(_key(row), {}).update(row)
    return list(by_key.values())
