"""Audit queries: a documented registry of named SQL over the deduplicated ledger.

Every query reads ``ledger FINAL`` (the newest rating of each event, see sinks.migrations) over
the half-open period ``[since, until)`` of ``event_time`` and takes the ClickHouse parameters
``{since:DateTime64(3)}`` and ``{until:DateTime64(3)}``; the tag audits also take
``{required:Array(String)}`` (default: team, app). The per-day cost and token audits read whole
hours and days from the rollups (equal to the ledger to the last digit, see ``sinks.windows``)
and also take that module's cut points ``h0``, ``d0``, ``d1``, ``h1``, as does
``prompt_length_by_feature``, which reads whole hours from the insight cells' exact quantile
states (``sinks.insight_cells``), and ``cache_savings`` and ``cost_by_unit``, from the cells'
sums (their cached calls and per-unit counts since migration 78); so do the tag audits
when every required tag is one the rollups keep as a column (:data:`TAG_DIMENSIONS`: the
column holds the tag's value, ``''`` when absent), and they read the ledger's ``tags`` map for
any other tag. Run one with
``spendstream audit run NAME``, or print it with literal values (``spendstream audit show
NAME``) for ``spendstream sql -``.

Contracts shared by all queries:

- Money is ``Decimal(38, 18)`` USD. Ratios of money (``cost_per_request``) are truncated toward
  zero at 18 decimals; percentages are truncated at 4 decimals (ClickHouse decimal division).
- Unpriced events (``priced = false``) count as events and tokens with cost 0.
- Days are UTC calendar days (``toDate(event_time)``).

Cache savings (``cache_savings``) is computed in SQL from what the ledger charged (summed in
the insight cells), not from the
current catalog, so it stays true after catalog changes and runs anywhere the ledger is. The
uncached input rate of a price (``price_ref`` + ``batch``, which fix every rate: tiers and
overrides are part of ``price_ref``) is ``sum(cost_input) / sum(uncached input tokens)`` over the
period's events of that price with uncached input; the division is exact whenever the per-token
rate has at most 18 decimals (every shipped rate, batch rates included, has at most 10). Then
per group::

    gross_savings  = cache_read_tokens  x input_rate - cost_cache_read
    write_premium  = cost_cache_write   - cache_write_tokens x input_rate
    net_savings    = gross_savings - write_premium

Events of a price with no uncached input in the period have no derivable rate; they are left
out of the savings and counted in ``events_without_rate``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from spendstream.sinks.insight_cells import CELLS_SOURCE, MERGE
from spendstream.sinks.migrations import TAG_DIMENSIONS, TOKEN_COLUMNS
from spendstream.sinks.windows import spend_source, window_parameters

DEFAULT_REQUIRED_TAGS = ("team", "app")
SCOPE = "/*scope*/1"
# Every ledger read of every audit goes through PERIOD, so a scope (team restriction) replaces
# SCOPE in all of them: totals, shares and joins alike.
PERIOD = (
    f"event_time >= {{since:DateTime64(3)}} AND event_time < {{until:DateTime64(3)}} AND {SCOPE}"
)
TOKEN_SUMS = (
    "sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
    "sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, "
    "sum(reasoning_tokens) AS reasoning_tokens"
)


def _pct(part: str, whole: str) -> str:
    """``part / whole`` as a percentage truncated to 4 decimals; NULL when ``whole`` is 0."""
    return f"toDecimal128(toDecimal256({part}, 18) * 100 / nullIf(toDecimal256({whole}, 18), 0), 4)"


@dataclass(frozen=True)
class AuditQuery:
    """A named audit: ``sql`` takes ``since``/``until`` (and ``required`` when ``uses_tags``).

    ``over_rollups``, for a tag audit, writes the same audit over ``spend_source`` grouped by
    the required tags; it is used when every required tag is in :data:`TAG_DIMENSIONS`.
    """

    name: str
    description: str
    template: str
    uses_tags: bool = False
    windowed: bool = False  # reads sinks.windows.spend_source (takes its cut points)
    over_rollups: Callable[[tuple[str, ...]], str] | None = None

    def plan(self, required: Sequence[str] = DEFAULT_REQUIRED_TAGS) -> tuple[str, bool]:
        """``(template, windowed)`` of the audit for these required tags."""
        dims = tuple(dict.fromkeys(required))
        if self.over_rollups is not None and dims and set(dims) <= set(TAG_DIMENSIONS):
            return self.over_rollups(dims), True
        return self.template, self.windowed

    @property
    def sql(self) -> str:
        """The audit over every row (default required tags)."""
        return self.plan()[0]

    def sql_for(self, required: Sequence[str]) -> str:
        """The audit over every row, for these required tags."""
        return self.plan(required)[0]

    def scoped(self, condition: str, required: Sequence[str] = DEFAULT_REQUIRED_TAGS) -> str:
        """The audit restricted to ledger rows matching the SQL ``condition``."""
        return self.sql_for(required).replace(SCOPE, f"({condition})")

    def parameters(
        self,
        since: datetime,
        until: datetime,
        required: Sequence[str] = DEFAULT_REQUIRED_TAGS,
    ) -> dict[str, Any]:
        windowed = self.plan(required)[1]
        params: dict[str, Any] = (
            window_parameters(since, until) if windowed else {"since": since, "until": until}
        )
        if self.uses_tags:
            params["required"] = list(required)
        return params


def _cost_by(name: str, dims: Sequence[str], what: str) -> AuditQuery:
    group = ", ".join(("day", *dims))
    return AuditQuery(
        name,
        f"Spend per day and {what}: events, requests, cost_usd and cost_per_request "
        "(cost_usd / requests).",
        f"SELECT day, {', '.join(dims)}, sum(m_events) AS events, "
        "sum(m_requests) AS requests, sum(m_cost_total) AS cost_usd, "
        "sum(m_cost_total) / sum(m_requests) AS cost_per_request "
        f"FROM ({spend_source(dims, SCOPE)}) "
        f"GROUP BY {group} ORDER BY day, cost_usd DESC, {', '.join(dims)}",
        windowed=True,
    )


TOKEN_TRENDS = AuditQuery(
    "token_trends",
    "Tokens per day and model: events, requests and the five token counts "
    "(input includes cache read/write; output includes reasoning).",
    "SELECT day, provider, model, sum(m_events) AS events, sum(m_requests) AS requests, "
    + ", ".join(f"sum(m_{name}) AS {name}" for name in TOKEN_COLUMNS)
    + " "
    f"FROM ({spend_source(('provider', 'model'), SCOPE)}) "
    "GROUP BY day, provider, model ORDER BY day, provider, model",
    windowed=True,
)

# Over the insight cells' exact quantile states (sinks.insight_cells): merging them gives the
# ledger's quantileExact values, and level 1 of the same state its maximum.
PROMPT_LENGTH = AuditQuery(
    "prompt_length_by_feature",
    "Prompt length per day and feature: events and exact p50/p95/max input tokens "
    "(quantileExact: the element at index floor(level x n) of the sorted values).",
    "SELECT day, feature, events, q[1] AS p50_input_tokens, q[2] AS p95_input_tokens, "
    "max_input_tokens FROM (SELECT toDate(window_start) AS day, feature, "
    f"sum(m_events) AS events, {MERGE}(m_input_quantiles) AS q, "
    "quantileExactMerge(1)(m_input_quantiles) AS max_input_tokens "
    f"FROM (SELECT * FROM ({CELLS_SOURCE}) WHERE {SCOPE}) GROUP BY day, feature) "
    "ORDER BY day, feature",
    windowed=True,
)

# Over the insight cells (whole hours; the edges from the ledger, grouped the same way): their
# conditional sums keep the rows each part filters on (uncached input for the rate, the cached
# calls and their costs, migration 78), so every figure equals the ledger's.
CACHE_CELLS = f"(SELECT * FROM ({CELLS_SOURCE}) WHERE {SCOPE}) WHERE priced AND NOT response_cached"
CACHE_SAVINGS = AuditQuery(
    "cache_savings",
    "Prompt-cache savings per day and model, net of cache-write cost, at the uncached input "
    "rate each event was charged (see module docs): gross_savings, write_premium, net_savings, "
    "events_without_rate.",
    "WITH rates AS ("
    "SELECT price_ref, batch, sum(m_rate_cost_input) / sum(m_rate_uncached_tokens) AS input_rate "
    f"FROM {CACHE_CELLS} GROUP BY price_ref, batch HAVING sum(m_rate_uncached_tokens) > 0), "
    "groups AS ("
    "SELECT toDate(window_start) AS day, provider, model, price_ref, batch, "
    "sum(m_cached_events) AS events, "
    "sum(m_cache_read_tokens) AS cr, sum(m_cache_write_tokens) AS cw, "
    "sum(m_cached_cost_cache_read) AS ccr, sum(m_cached_cost_cache_write) AS ccw "
    f"FROM {CACHE_CELLS} GROUP BY day, provider, model, price_ref, batch HAVING events > 0) "
    "SELECT g.day AS day, g.provider AS provider, g.model AS model, "
    "sum(g.cr) AS cache_read_tokens, sum(g.cw) AS cache_write_tokens, "
    "sum(g.ccr) AS cost_cache_read, sum(g.ccw) AS cost_cache_write, "
    "sumIf(g.cr * r.input_rate - g.ccr, r.price_ref != '') AS gross_savings, "
    "sumIf(g.ccw - g.cw * r.input_rate, r.price_ref != '') AS write_premium, "
    "gross_savings - write_premium AS net_savings, "
    "sumIf(g.events, r.price_ref = '') AS events_without_rate "
    "FROM groups AS g LEFT JOIN rates AS r ON g.price_ref = r.price_ref AND g.batch = r.batch "
    "GROUP BY day, provider, model ORDER BY day, provider, model",
    windowed=True,
)


def _tag_values(dims: Sequence[str]) -> str:
    """A map from each tag in ``dims`` (rollup columns) to its value in the row."""
    return "map(" + ", ".join(f"'{dim}', {dim}" for dim in dims) + ")"


def _unallocated_over_rollups(dims: tuple[str, ...]) -> str:
    value = _tag_values(dims)
    return (
        f"SELECT arrayFilter(k -> {value}[k] = '', {{required:Array(String)}}) AS missing_tags, "
        "sum(m_events) AS events, sum(m_cost_total) AS cost_usd, "
        + _pct("cost_usd", f"(SELECT sum(m_cost_total) FROM ({spend_source((), SCOPE)}))")
        + " AS share_of_spend_pct "
        f"FROM ({spend_source(dims, SCOPE)}) WHERE notEmpty(missing_tags) "
        "GROUP BY missing_tags ORDER BY cost_usd DESC, missing_tags"
    )


def _coverage_over_rollups(dims: tuple[str, ...]) -> str:
    value = _tag_values(dims)
    return (
        "SELECT tag, sum(m_events) AS events, "
        f"sumIf(m_events, {value}[tag] != '') AS tagged_events, "
        + _pct("tagged_events", "events")
        + " AS event_coverage_pct, sum(m_cost_total) AS cost_usd, "
        f"sumIf(m_cost_total, {value}[tag] != '') AS tagged_cost_usd, "
        + _pct("tagged_cost_usd", "cost_usd")
        + " AS spend_coverage_pct "
        f"FROM ({spend_source(dims, SCOPE)}) ARRAY JOIN {{required:Array(String)}} AS tag "
        "GROUP BY tag ORDER BY tag"
    )


UNALLOCATED = AuditQuery(
    "unallocated_spend",
    "Spend on events missing required tags (--require, default team and app), per set of "
    "missing tags: events, cost_usd and share_of_spend_pct of the period's spend.",
    "SELECT arrayFilter(k -> tags[k] = '', {required:Array(String)}) AS missing_tags, "
    "count() AS events, sum(cost_total) AS cost_usd, "
    + _pct("cost_usd", f"(SELECT sum(cost_total) FROM ledger FINAL WHERE {PERIOD})")
    + " AS share_of_spend_pct "
    f"FROM ledger FINAL WHERE {PERIOD} AND notEmpty(missing_tags) "
    "GROUP BY missing_tags ORDER BY cost_usd DESC, missing_tags",
    uses_tags=True,
    over_rollups=_unallocated_over_rollups,
)

TAG_COVERAGE = AuditQuery(
    "tag_coverage",
    "Coverage of each required tag (--require): events and spend carrying a non-empty value, "
    "as counts and percentages.",
    "SELECT tag, count() AS events, countIf(tags[tag] != '') AS tagged_events, "
    + _pct("tagged_events", "events")
    + " AS event_coverage_pct, sum(cost_total) AS cost_usd, "
    "sumIf(cost_total, tags[tag] != '') AS tagged_cost_usd, "
    + _pct("tagged_cost_usd", "cost_usd")
    + " AS spend_coverage_pct "
    "FROM ledger FINAL ARRAY JOIN {required:Array(String)} AS tag "
    f"WHERE {PERIOD} GROUP BY tag ORDER BY tag",
    uses_tags=True,
    over_rollups=_coverage_over_rollups,
)

# Over the insight cells (migration 78): the events with a token cost and their token sums, and
# per usage unit its events, quantity and cost; unpriced events from the cells' `priced`.
UNIT_CELLS = f"(SELECT * FROM ({CELLS_SOURCE}) WHERE {SCOPE})"
COST_BY_UNIT = AuditQuery(
    "cost_by_unit",
    "Spend per day, model and cost driver: 'tokens' and each usage unit (images, audio_seconds, "
    "web_search_calls, ...) with its quantity; the drivers of an event sum to its cost_total.",
    "SELECT day, provider, model, unit, sum(n) AS events, sum(q) AS quantity, "
    "sum(c) AS cost_usd, sumIf(n, NOT priced) AS unpriced_events FROM ("
    "SELECT toDate(window_start) AS day, provider, model, priced, 'tokens' AS unit, "
    "m_token_events AS n, toDecimal128(m_input_tokens + m_output_tokens, 9) AS q, "
    f"m_cost_total - m_cost_units AS c FROM {UNIT_CELLS} WHERE m_token_events > 0 "
    "UNION ALL SELECT toDate(window_start) AS day, provider, model, priced, unit, "
    "m_unit_events[unit] AS n, m_unit_quantities[unit] AS q, m_unit_costs[unit] AS c "
    f"FROM {UNIT_CELLS} ARRAY JOIN mapKeys(m_unit_events) AS unit) "
    "GROUP BY day, provider, model, unit ORDER BY day, provider, model, unit",
    windowed=True,
)

AUDITS: dict[str, AuditQuery] = {
    query.name: query
    for query in (
        _cost_by("cost_per_request", ("team", "app"), "team/app"),
        _cost_by("cost_per_user", ("user",), "user"),
        _cost_by("cost_per_feature", ("feature",), "feature"),
        _cost_by("cost_per_model", ("provider", "model"), "model"),
        TOKEN_TRENDS,
        PROMPT_LENGTH,
        CACHE_SAVINGS,
        UNALLOCATED,
        TAG_COVERAGE,
        COST_BY_UNIT,
    )
}


def get_audit(name: str) -> AuditQuery:
    """The audit called ``name``; KeyError lists the valid names."""
    try:
        return AUDITS[name]
    except KeyError:
        raise KeyError(f"no audit {name!r}; choose from {', '.join(AUDITS)}") from None


PLACEHOLDER = re.compile(r"\{(\w+):([^{}]+)\}")


def _literal(value: Any) -> str:
    if isinstance(value, datetime):
        text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        return f"toDateTime64('{text}', 3, 'UTC')"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_literal(item) for item in value) + "]"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def render_sql(sql: str, parameters: dict[str, Any]) -> str:
    """``sql`` with its ``{name:Type}`` placeholders replaced by literals (for ``spendstream
    sql``); raises KeyError for a placeholder without a value."""
    return PLACEHOLDER.sub(lambda match: _literal(parameters[match.group(1)]), sql)
