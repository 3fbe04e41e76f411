"""Caching (``caching``) and embeddings (``embeddings``): money cached, and money paid twice.

caching, one row per (feature, provider, model, kind):

- ``prompt_cache_realised``: the calls that read or wrote the cache, their cache_read
  tokens; ``usd`` = gross - write premium, where
  gross = cache_read x input rate - cost_cache_read and premium = cost_cache_write -
  cache_write x input rate, the input rate being what the event's price charged per uncached
  input token (``sum(cost_input) / uncached tokens`` per price_ref and batch in the period, as
  in the ``cache_savings`` audit; events of a price without uncached input are left out;
  response-cached events, which cost nothing, take no part).
- ``prompt_cache_opportunity``: priced events (not embeddings, not response-cached) whose
  ``prompt_hash`` was sent to the same provider/model at most ``prompt_cache_window_s`` earlier;
  tokens = their uncached input; ``usd`` = uncached input x (list input rate - list cache-read
  rate). Ignores the write premium the first call would pay, and minimum cacheable lengths.
- ``response_cache``: events the app served from its own cache (``response_cached``);
  tokens = input + output; ``usd`` = ``cost_avoided`` (the rating they would have had).
- ``paid_twice``: events not served by the app's cache whose ``prompt_hash`` was sent to the
  same provider/model (also unserved) at most ``paid_twice_window_s`` earlier; ``usd`` = what
  they cost (the whole answer was bought again).

embeddings, per (feature, provider, model) of ``operation = 'embeddings'``: events, input
tokens, ``cost_usd``; ``repeated_events`` carry a ``prompt_hash`` already embedded by the same
provider/model earlier in the period, and ``re_embedding_usd`` is what they cost.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from spendstream.insights.base import ESTIMATE, Context, InsightResult, dec, money, num, pct
from spendstream.insights.cells import cell_rows
from spendstream.insights.reprice import BUCKET_SQL, ListPrices
from spendstream.insights.sightings import (
    IN_PERIOD,
    TEAM_REPEATS,
    scoped_rows,
    sighting_rows,
    team_rows,
)
from spendstream.insights.sightings import REPEATS as REPEATS_SOURCE
from spendstream.insights.sightings import SOURCE as SIGHTINGS
from spendstream.sinks.prompt_sightings import REPEAT_HORIZON_S

KEY = ("feature", "provider", "model")
REALISED_SQL = (
    "WITH rates AS (SELECT price_ref, batch, sum(cost_input) / "
    "sum(input_tokens - cache_read_tokens - cache_write_tokens) AS input_rate "
    "FROM ledger FINAL WHERE {where} AND priced AND NOT response_cached "
    "AND input_tokens > cache_read_tokens + cache_write_tokens GROUP BY price_ref, batch), "
    "groups AS (SELECT feature, provider, model, price_ref, batch, "
    "sum(cache_read_tokens) AS cr, sum(cache_write_tokens) AS cw, "
    "sum(cost_cache_read) AS ccr, sum(cost_cache_write) AS ccw, count() AS calls "
    "FROM ledger FINAL WHERE {where} AND priced AND NOT response_cached "
    "AND cache_read_tokens + cache_write_tokens > 0 "
    "GROUP BY feature, provider, model, price_ref, batch) "
    "SELECT g.feature AS feature, g.provider AS provider, g.model AS model, "
    "sumIf(g.cr, r.price_ref != '') AS tokens, sumIf(g.calls, r.price_ref != '') AS events, "
    "sumIf((g.cr * r.input_rate - g.ccr) - (g.ccw - g.cw * r.input_rate), r.price_ref != '') "
    "AS usd FROM groups AS g "
    "LEFT JOIN rates AS r ON g.price_ref = r.price_ref AND g.batch = r.batch "
    "GROUP BY feature, provider, model"
)
RESPONSE_SQL = (
    "SELECT feature, provider, model, count() AS events, "
    "sum(input_tokens + output_tokens) AS tokens, sum(cost_avoided) AS usd "
    "FROM ledger FINAL WHERE {where} AND response_cached GROUP BY feature, provider, model"
)
# The same two reads over the insight cells (insights.cells), whose conditional sums keep the
# rows each part of REALISED_SQL filters on (uncached input for the rate, cached calls' costs).
UNSERVED = "priced AND NOT response_cached"
# One read of the cells: the groups, and each price's rate summed over its groups by a window
# (REALISED_SQL's join: a price with no uncached input has no rate and its groups count nothing).
CELL_REALISED_SQL = (
    "SELECT feature, provider, model, sumIf(cr, has_rate) AS tokens, "
    "sumIf(calls, has_rate) AS events, "
    "sumIf((cr * input_rate - ccr) - (ccw - cw * input_rate), has_rate) AS usd "
    "FROM (SELECT feature, provider, model, cr, cw, ccr, ccw, calls, "
    "price_ref != '' AND sum(rate_tokens) OVER price > 0 AS has_rate, "
    "sum(rate_cost) OVER price / greatest(sum(rate_tokens) OVER price, 1) AS input_rate "
    "FROM (SELECT feature, provider, model, price_ref, batch, "
    "sum(m_cache_read_tokens) AS cr, sum(m_cache_write_tokens) AS cw, "
    "sum(m_cached_cost_cache_read) AS ccr, sum(m_cached_cost_cache_write) AS ccw, "
    "sum(m_cached_events) AS calls, "
    "sum(m_rate_cost_input) AS rate_cost, sum(m_rate_uncached_tokens) AS rate_tokens "
    f"FROM ({{cells}}) WHERE {UNSERVED} GROUP BY feature, provider, model, price_ref, batch) "
    "WINDOW price AS (PARTITION BY price_ref, batch)) GROUP BY feature, provider, model"
)
CELL_RESPONSE_SQL = (
    "SELECT feature, provider, model, sum(m_events) AS events, "
    "sum(m_input_tokens) + sum(m_output_tokens) AS tokens, sum(m_cost_avoided) AS usd "
    "FROM ({cells}) WHERE response_cached GROUP BY feature, provider, model"
)
# Only the columns the windowed queries use: a window over the whole row would read every column.
USED = (
    "feature, provider, model, batch, event_time, input_tokens, output_tokens, "
    "cache_read_tokens, cache_write_tokens, cost_total"
)
# Gap (ms) to the previous event with the same prompt on the same model; the first is huge.
GAP = (
    "dateDiff('millisecond', lagInFrame(event_time, 1, "
    "toDateTime64('1970-01-01 00:00:00', 3, 'UTC')) OVER (PARTITION BY provider, model, "
    "prompt_hash ORDER BY event_time, event_id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW), "
    "event_time) AS gap"
)
REPEATS = (
    f"SELECT {USED}, {GAP} FROM ledger FINAL WHERE {{where}} AND prompt_hash != '' AND {{only}} "
    # only prompts sent more than once can repeat: a cheap aggregation (a superset without
    # FINAL; the window itself reads FINAL) shrinks the window's input
    "AND (provider, model, prompt_hash) IN (SELECT provider, model, prompt_hash FROM ledger "
    "WHERE {where} AND prompt_hash != '' AND {only} GROUP BY provider, model, prompt_hash "
    "HAVING count() > 1)"
)
UNSERVED_CHAT = "priced AND NOT response_cached AND operation != 'embeddings'"
# Per (feature, provider, model, batch, day, tier bucket) over rows carrying their `gap`.
REPEATS_SUMS = (
    "SELECT feature, provider, model, batch, toDate(event_time) AS day, "
    f"{BUCKET_SQL} AS bucket, countIf(gap <= {{cache_ms:Int64}}) AS cache_events, "
    "sumIf(input_tokens - cache_read_tokens - cache_write_tokens, gap <= {cache_ms:Int64}) "
    "AS uncached, countIf(gap <= {paid_ms:Int64}) AS paid_events, "
    "sumIf(input_tokens + output_tokens, gap <= {paid_ms:Int64}) AS paid_tokens, "
    "sumIf(cost_total, gap <= {paid_ms:Int64}) AS paid_usd "
    "FROM ({source}) GROUP BY feature, provider, model, batch, day, bucket"
)
REPEATS_SQL = REPEATS_SUMS.replace("{source}", REPEATS.replace("{only}", UNSERVED_CHAT))
# The same from the sightings (insights.sightings): only events whose previous sighting is in
# the period and within the wider window can count, and no other is read past its times. From
# the repeats (`{sightings}`) when both windows are within their horizon, else every sighting.
SIGHTING_REPEATS_SQL = REPEATS_SUMS.replace(
    "{source}",
    f"SELECT {USED}, dateDiff('millisecond', previous_time, event_time) AS gap "
    f"FROM {{sightings}} WHERE {{where}} AND {UNSERVED_CHAT} AND {IN_PERIOD} AND previous_time "
    ">= event_time - toIntervalMillisecond(greatest({cache_ms:Int64}, {paid_ms:Int64}))",
)


# A team or feature scope (sightings.scoped_rows): the window over the sightings of the prompts
# with an in-scope sighting whose previous one overall is within the wider window (the previous
# one inside the scope is never later).
SCOPED_REPEATS_SQL = REPEATS_SUMS.replace(
    "{source}",
    f"SELECT {USED}, {GAP} FROM {SIGHTINGS} WHERE {{where}} AND {UNSERVED_CHAT} "
    "AND (provider, model, prompt_hash) IN (SELECT provider, model, prompt_hash "
    f"FROM {{sightings}} WHERE {{where}} AND {UNSERVED_CHAT} AND {IN_PERIOD} AND previous_time "
    ">= event_time - toIntervalMillisecond(greatest({cache_ms:Int64}, {paid_ms:Int64})))",
)


def caching(context: Context) -> InsightResult:
    prices = ListPrices(context.pricer)
    totals: dict[tuple[Any, ...], list[Any]] = {}

    def add(key: tuple[Any, ...], kind: str, events: int, tokens: int, usd: Decimal) -> None:
        entry = totals.setdefault((*key, kind), [0, 0, Decimal(0)])
        entry[0] += events
        entry[1] += tokens
        entry[2] += usd

    realised = cell_rows(context, CELL_REALISED_SQL)
    for row in context.rows(REALISED_SQL) if realised is None else realised:
        if num(row["tokens"]):
            add(
                tuple(row[k] for k in KEY),
                "prompt_cache_realised",
                num(row["events"]),
                num(row["tokens"]),
                dec(row["usd"]),
            )
    response = cell_rows(context, CELL_RESPONSE_SQL)
    for row in context.rows(RESPONSE_SQL) if response is None else response:
        key = tuple(row[k] for k in KEY)
        add(key, "response_cache", num(row["events"]), num(row["tokens"]), dec(row["usd"]))
    settings = context.settings
    extra = {
        "thresholds": prices.thresholds,
        "cache_ms": settings.prompt_cache_window_s * 1000,
        "paid_ms": settings.paid_twice_window_s * 1000,
    }
    widest = max(settings.prompt_cache_window_s, settings.paid_twice_window_s)
    source = REPEATS_SOURCE if widest <= REPEAT_HORIZON_S else SIGHTINGS
    repeats = sighting_rows(context, SIGHTING_REPEATS_SQL.replace("{sightings}", source), extra)
    if repeats is None and widest <= REPEAT_HORIZON_S:
        # a team scope: the same filter over each sighting's previous one in its team
        repeats = team_rows(
            context, SIGHTING_REPEATS_SQL.replace("{sightings}", TEAM_REPEATS), extra
        )
    if repeats is None:
        repeats = scoped_rows(context, SCOPED_REPEATS_SQL.replace("{sightings}", source), extra)
    for row in context.rows(REPEATS_SQL, extra) if repeats is None else repeats:
        key = tuple(row[k] for k in KEY)
        if num(row["paid_events"]):
            add(
                key,
                "paid_twice",
                num(row["paid_events"]),
                num(row["paid_tokens"]),
                dec(row["paid_usd"]),
            )
        model = prices.model(row["provider"], row["model"])
        rates = model and prices.rates(
            model, row["day"], int(row["bucket"]), row["batch"] in (True, 1, "true")
        )
        if num(row["cache_events"]) and rates:
            uncached = num(row["uncached"])
            add(
                key,
                "prompt_cache_opportunity",
                num(row["cache_events"]),
                uncached,
                uncached * (rates.input - rates.cache_read),
            )
    rows = [[*key, events, tokens, money(usd)] for key, (events, tokens, usd) in totals.items()]
    rows.sort(key=lambda r: (-r[6], r[0], r[1], r[2], r[3]))
    columns = [*KEY, "kind", "events", "tokens", "usd"]
    return InsightResult("caching", columns, rows, "opportunity at " + ESTIMATE)


EMBEDDINGS_SUMS = (
    "SELECT feature, provider, model, count() AS events, sum(input_tokens) AS input_tokens, "
    "sum(cost_total) AS cost_usd, countIf(seen > 1) AS repeated_events, "
    "sumIf(cost_total, seen > 1) AS re_embedding_usd "
    "FROM (SELECT {USED}, {seen} AS seen FROM {source} WHERE {where} "
    "AND operation = 'embeddings') GROUP BY feature, provider, model"
).replace("{USED}", USED)
EMBEDDINGS_SQL = EMBEDDINGS_SUMS.replace(
    "{seen}",
    "if(prompt_hash = '', 1, row_number() OVER (PARTITION BY provider, model, prompt_hash "
    "ORDER BY event_time, event_id))",
).replace("{source}", "ledger FINAL")
# From the repeats, which hold every embedding with a prompt: one was seen before in the period
# when its previous one is in it; the totals of every embedding from the insight cells.
REPEATED_EMBEDDINGS_SQL = (
    "SELECT feature, provider, model, count() AS repeated_events, "
    f"sum(cost_total) AS re_embedding_usd FROM {REPEATS_SOURCE} WHERE {{where}} "
    f"AND operation = 'embeddings' AND {IN_PERIOD} GROUP BY feature, provider, model"
)
CELL_EMBEDDINGS_SQL = (
    "SELECT feature, provider, model, sum(m_events) AS events, "
    "sum(m_input_tokens) AS input_tokens, sum(m_cost_total) AS cost_usd "
    "FROM ({cells}) WHERE operation = 'embeddings' GROUP BY feature, provider, model"
)


def _fast_embeddings(context: Context) -> list[dict[str, Any]] | None:
    """The embeddings' sums from the cells and their repeats from the repeats table (the team
    repeats for a team scope), or None when neither can answer (the cells answer whenever
    they do)."""
    repeated = sighting_rows(context, REPEATED_EMBEDDINGS_SQL)
    if repeated is None:
        repeated = team_rows(context, REPEATED_EMBEDDINGS_SQL.replace(REPEATS_SOURCE, TEAM_REPEATS))
    totals = None if repeated is None else cell_rows(context, CELL_EMBEDDINGS_SQL)
    if repeated is None or totals is None:
        return None
    again = {tuple(row[k] for k in KEY): row for row in repeated}
    empty = {"repeated_events": 0, "re_embedding_usd": 0}
    return [{**row, **again.get(tuple(row[k] for k in KEY), empty)} for row in totals]


def embeddings(context: Context) -> InsightResult:
    rows = []
    found = _fast_embeddings(context)
    for row in context.rows(EMBEDDINGS_SQL) if found is None else found:
        cost, again = dec(row["cost_usd"]), dec(row["re_embedding_usd"])
        counts = [num(row[name]) for name in ("events", "input_tokens")]
        rows.append(
            [
                *(row[k] for k in KEY),
                *counts,
                cost,
                num(row["repeated_events"]),
                again,
                pct(again, cost),
            ]
        )
    rows.sort(key=lambda r: (-r[5], r[0], r[1], r[2]))
    columns = [
        *KEY,
        "events",
        "input_tokens",
        "cost_usd",
        "repeated_events",
        "re_embedding_usd",
        "re_embedding_pct",
    ]
    return InsightResult("embeddings", columns, rows)
