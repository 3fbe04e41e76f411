"""Model choice: ``rightsize`` (the same traffic on cheaper catalog models) and ``batch``.

rightsize, per (feature, provider, model) of priced chat traffic (not embeddings, not served
from the app's response cache): events, requests, ``cost_usd`` (what the ledger charged), exact
p50/p95 input and output tokens per event, then one row per candidate model (every model of the
provider's lower tiers in ``[insights] tiers``)::

    candidate_cost_usd = the same token counts by type at the candidate's rates as the
                         ledger's pricing would charge them: a negotiated override of the
                         candidate in force for the traffic's tags, else its list rates (its
                         cache-read/-write and reasoning rates, batch rates for batch events,
                         long-context tiers, the price row in force on each day)
    saving_usd         = cost_usd - candidate_cost_usd

A row is flagged when the model is in its provider's top tier, requests >= high_volume_requests,
p50 input <= short_input_tokens and p50 output <= short_output_tokens.

batch, per (feature, provider, model) of traffic that is not interactive (feature listed in
``batch_features`` or tag ``interactive_tag`` = "false")::

    saving_usd = cost of the events not sent as batch x the batch discount of their price (a
                 negotiated override's own ``batch_discount`` where one is in force for the
                 traffic's tags on the day, else the model's catalog discount)

So both savings are what the what-if (``spendstream.advice.whatif``) of the change gives.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from spendstream.insights.base import Context, InsightResult, dec, money, num, pct
from spendstream.insights.cells import MERGE, cell_rows, quantile_cell_rows
from spendstream.insights.reprice import BUCKET_SQL, TOKEN_SUMS, TOKENS, ListPrices
from spendstream.pricing.compiled import EXACT, CompiledModel
from spendstream.sinks.insight_cells import INTERACTIVE_TAG
from spendstream.sinks.migrations import LONG_INPUT_FLOOR

CHAT = "priced AND NOT response_cached AND operation != 'embeddings'"
FLAG = "high volume, short prompts and outputs, top-tier model"
# What the ledger's pricing charges, so a saving is the what-if of its change.
ESTIMATE = (
    "price estimates at the prices in force (catalog list prices and negotiated overrides), "
    "never a statement about quality"
)

# {tags}: the tag columns overrides match on (:func:`tag_columns`), so each group has one price.
GROUPS_SQL = (
    "SELECT feature, provider, model{tags}, batch, toDate(event_time) AS day, "
    f"{BUCKET_SQL} AS bucket, {TOKEN_SUMS} "
    f"FROM ledger FINAL WHERE {{where}} AND {CHAT} "
    "GROUP BY feature, provider, model{tags}, batch, day, bucket"
)
QUANTILES = (
    ", quantileExact(0.5)(input_tokens) AS p50_in, quantileExact(0.95)(input_tokens) AS p95_in, "
    "quantileExact(0.5)(output_tokens) AS p50_out, quantileExact(0.95)(output_tokens) AS p95_out"
)
STATS_SQL = (
    "SELECT feature, provider, model, count() AS events, sum(request_count) AS requests, "
    # Token cost only: a model swap re-prices tokens; unit costs (searches, images) stay.
    f"sum(cost_total - cost_units) AS cost_usd{QUANTILES} "
    f"FROM ledger FINAL WHERE {{where}} AND {CHAT} GROUP BY feature, provider, model"
)
# The same two reads over the insight cells (insights.cells): the tier bucket from `long_input`
# (exact when every threshold is above LONG_INPUT_FLOOR), the quantiles merged from the states.
CELL_GROUPS_SQL = (
    "SELECT feature, provider, model{tags}, batch, toDate(window_start) AS day, "
    "arrayCount(t -> long_input > t, {thresholds:Array(UInt64)}) AS bucket, "
    + ", ".join(f"sum(m_{name}) AS sum_{name}" for name in (*TOKENS, "reasoning_tokens"))
    + f" FROM ({{cells}}) WHERE {CHAT} GROUP BY feature, provider, model{{tags}}, batch, day, "
    "bucket"
)
# Tags an override can match that are columns of the ledger; the cells keep team (and feature).
TAG_COLUMNS = ("team", "app", "env")
CELL_TAG_COLUMNS = ("team",)
CELL_QUANTILES = (
    f", {MERGE}(m_input_quantiles) AS q_in, {MERGE}(m_output_quantiles) AS q_out, "
    "q_in[1] AS p50_in, q_in[2] AS p95_in, q_out[1] AS p50_out, q_out[2] AS p95_out"
)
CELL_STATS_SQL = (
    "SELECT feature, provider, model, sum(m_events) AS events, sum(m_requests) AS requests, "
    f"sum(m_cost_total) - sum(m_cost_units) AS cost_usd{CELL_QUANTILES} "
    f"FROM ({{cells}}) WHERE {CHAT} GROUP BY feature, provider, model"
)
STATS_QUANTILES = ((CELL_STATS_SQL, CELL_QUANTILES), (STATS_SQL, QUANTILES))
# The token quantile columns of both.
TOKEN_QUANTILES = ("p50_in", "p95_in", "p50_out", "p95_out")
RIGHTSIZE_COLUMNS = [
    "feature",
    "provider",
    "model",
    "events",
    "requests",
    "cost_usd",
    "p50_input_tokens",
    "p95_input_tokens",
    "p50_output_tokens",
    "p95_output_tokens",
    "candidate",
    "candidate_cost_usd",
    "saving_usd",
    "saving_pct",
    "flag",
]


def _tiers(context: Context, provider: str) -> list[list[CompiledModel]]:
    """The provider's configured tiers as catalog models (names not in the catalog skipped)."""
    canonical = context.pricer.canonical_provider(provider) or provider
    tiers = []
    for names in context.settings.tiers.get(canonical, []):
        found = (context.pricer.find_model(canonical, name) for name in names)
        tiers.append([model for model in found if model is not None])
    return tiers


def _candidates(
    context: Context, provider: str, model: CompiledModel | None
) -> tuple[bool, list[CompiledModel]]:
    """(is the model top tier, the models of every lower tier)."""
    tiers = _tiers(context, provider)
    keys = [[m.entry.key for m in tier] for tier in tiers]
    if model is None:
        return False, []
    for level, tier_keys in enumerate(keys):
        if model.entry.key in tier_keys:
            return level == 0, [m for tier in tiers[level + 1 :] for m in tier]
    return False, []


def tag_columns(prices: ListPrices) -> tuple[tuple[str, ...], bool]:
    """The tag columns (of :data:`TAG_COLUMNS`) some override's ``tags`` match on, which groups
    must keep to be priced as the ledger was, and whether the cells keep them all."""
    keys = prices.override_tag_keys
    columns = tuple(name for name in TAG_COLUMNS if name in keys)
    return columns, set(columns) <= set(CELL_TAG_COLUMNS)


def with_tags(sql: str, columns: tuple[str, ...]) -> str:
    return sql.replace("{tags}", "".join(f", {name}" for name in columns))


def group_tags(row: dict[str, Any], columns: tuple[str, ...]) -> dict[str, str]:
    """A group's tags that overrides match on (feature and ``columns``; empty: no tag)."""
    return {name: str(row[name]) for name in ("feature", *columns) if row[name]}


def rightsize(context: Context, quantiles: bool = True) -> InsightResult:
    """The insight; without ``quantiles`` (what the recommendations read: merging every token
    count is most of its time), the four token quantiles are None and nothing is flagged."""
    prices = ListPrices(context.pricer)
    extra = {"thresholds": prices.thresholds}
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    exact_buckets = all(threshold >= LONG_INPUT_FLOOR for threshold in prices.thresholds)
    tags, in_cells = tag_columns(prices)
    cells = exact_buckets and in_cells
    found = cell_rows(context, with_tags(CELL_GROUPS_SQL, tags), extra) if cells else None
    for row in context.rows(with_tags(GROUPS_SQL, tags), extra) if found is None else found:
        groups[(row["feature"], row["provider"], row["model"])].append(row)
    out: list[list[Any]] = []
    settings = context.settings
    cell_sql, ledger_sql = CELL_STATS_SQL, STATS_SQL
    if not quantiles:
        cell_sql, ledger_sql = (sql.replace(q, "") for sql, q in STATS_QUANTILES)
    names = TOKEN_QUANTILES if quantiles else ()
    all_stats = None if found is None else quantile_cell_rows(context, cell_sql, names)
    for stats in context.rows(ledger_sql) if all_stats is None else all_stats:
        key = (stats["feature"], stats["provider"], stats["model"])
        cost, requests = dec(stats["cost_usd"]), num(stats["requests"])
        tokens = [num(stats[name]) if quantiles else None for name in TOKEN_QUANTILES]
        top, candidates = _candidates(context, key[1], prices.model(key[1], key[2]))
        flagged = (
            quantiles
            and top
            and requests >= settings.high_volume_requests
            and num(tokens[0]) <= settings.short_input_tokens
            and num(tokens[2]) <= settings.short_output_tokens
        )
        head = [*key, num(stats["events"]), requests, cost, *tokens]
        if not candidates:
            out.append([*head, "", None, None, None, FLAG if flagged else ""])
        for candidate in candidates:
            name = (candidate.entry.provider, candidate.entry.model)
            costs = [
                prices.effective_cost(*name, group, group_tags(group, tags))
                for group in groups[key]
            ]
            if any(item is None for item in costs):
                continue  # the candidate had no price yet on some day of this traffic
            total = sum((item for item in costs if item is not None), Decimal(0))
            saving = cost - total
            priced = [candidate.entry.model, money(total), money(saving), pct(saving, cost)]
            out.append([*head, *priced, FLAG if flagged else ""])
    out.sort(key=lambda r: (r[0], -r[5], r[1], r[2], -(r[12] or 0), r[10]))
    return InsightResult("rightsize", RIGHTSIZE_COLUMNS, out, ESTIMATE)


BATCH_SQL = (
    "SELECT feature, provider, model{tags}, toDate(event_time) AS day, "
    "sum(request_count) AS requests, "
    # Batch discounts apply to tokens; unit costs are left out of both figures.
    "sumIf(cost_total - cost_units, NOT batch) AS cost_usd, "
    "sumIf(cost_total - cost_units, batch) AS batched_cost_usd "
    "FROM ledger FINAL WHERE {where} AND priced AND NOT response_cached "
    "AND (feature IN {batch_features:Array(String)} OR tags[{interactive_tag:String}] = 'false') "
    "GROUP BY feature, provider, model{tags}, day"
)


# Over the insight cells, which keep the tag `interactive` (the default interactive_tag).
CELL_BATCH_SQL = (
    "SELECT feature, provider, model{tags}, toDate(window_start) AS day, "
    "sum(m_requests) AS requests, "
    "sumIf(m_cost_total, NOT batch) - sumIf(m_cost_units, NOT batch) AS cost_usd, "
    "sumIf(m_cost_total, batch) - sumIf(m_cost_units, batch) AS batched_cost_usd "
    "FROM ({cells}) WHERE priced AND NOT response_cached "
    "AND (feature IN {batch_features:Array(String)} OR interactive = 'false') "
    "GROUP BY feature, provider, model{tags}, day"
)


def batch(context: Context) -> InsightResult:
    settings = context.settings
    prices = ListPrices(context.pricer)
    tags, in_cells = tag_columns(prices)
    extra = {
        "batch_features": list(settings.batch_features),
        "interactive_tag": settings.interactive_tag,
    }
    found = None
    if settings.interactive_tag == INTERACTIVE_TAG and in_cells:
        found = cell_rows(context, with_tags(CELL_BATCH_SQL, tags), extra)
    # per (feature, provider, model): requests, cost, batched cost, saving, the discounts seen
    sums: dict[tuple[str, str, str], list[Any]] = {}
    for row in context.rows(with_tags(BATCH_SQL, tags), extra) if found is None else found:
        key = (row["feature"], row["provider"], row["model"])
        price = prices.point(key[1], key[2], row["day"], group_tags(row, tags))
        discount = price[1] if price else Decimal(0)
        cost = dec(row["cost_usd"])
        entry = sums.setdefault(key, [0, Decimal(0), Decimal(0), Decimal(0), set()])
        entry[0] += num(row["requests"])
        entry[1] += cost
        entry[2] += dec(row["batched_cost_usd"])
        entry[3] = EXACT.add(entry[3], EXACT.multiply(cost, discount))
        entry[4].add(discount)
    out = []
    for key, (requests, cost, batched, saving, discounts) in sums.items():
        # one discount, else the saving's share of the cost (several prices in the period)
        share = pct(saving, cost)
        discount = next(iter(discounts)) if len(discounts) == 1 else (share or 0) / Decimal(100)
        out.append([*key, requests, cost, batched, discount, money(saving)])
    out.sort(key=lambda r: (-r[7], r[0], r[1], r[2]))
    columns = [
        "feature",
        "provider",
        "model",
        "requests",
        "cost_usd",
        "batched_cost_usd",
        "batch_discount",
        "saving_usd",
    ]
    return InsightResult("batch", columns, out, ESTIMATE)
