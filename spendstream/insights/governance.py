"""Tag governance: ``governance`` (coverage of required tags, weekly) and ``untagged`` (the
sources of untagged spend to fix first).

The required tags of an event depend on its ``env`` tag (``[insights] required_tags``, with
``"*"`` for every other env). Events lacking one are stored as they came (``untagged_policy =
"unallocated"``, the default; a missing team shows as ``unallocated``) or dead-lettered by the
worker (``"dead_letter"``).

governance, per required tag and ISO week (Monday, UTC), over the events that require it::

    coverage_pct = spend of those events carrying a non-empty value / their spend x 100

with ``events``, ``tagged_events`` and ``change_pct`` (coverage points against the tag's
previous week); read from the rollups when every required tag is one they keep as a column
(team, app, env, feature, user), else from the ledger's ``tags``. untagged, per (team, app,
user) of events lacking at least one required tag:
events, ``cost_usd``, the missing tags, and the share of the period's spend; largest first.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from spendstream.insights.base import Context, InsightResult, dec, num, pct
from spendstream.sinks.migrations import TAG_DIMENSIONS
from spendstream.sinks.windows import spend_source, window_parameters

REQUIRED = (
    "if(indexOf({envs:Array(String)}, env) = 0, {default:Array(String)}, "
    "arrayElement({lists:Array(Array(String))}, indexOf({envs:Array(String)}, env)))"
)
COVERAGE_SQL = (
    "SELECT tag, toMonday(event_time) AS week, count() AS events, "
    "countIf(tags[tag] != '') AS tagged_events, sum(cost_total) AS cost_usd, "
    "sumIf(cost_total, tags[tag] != '') AS tagged_cost_usd "
    f"FROM ledger FINAL ARRAY JOIN {REQUIRED} AS tag WHERE {{where}} "
    "GROUP BY tag, week ORDER BY tag, week"
)
TOP = 50
UNTAGGED_SQL = (
    "SELECT if(team = '', 'unallocated', team) AS team_or_bucket, app, user, "
    "count() AS events, sum(cost_total) AS cost_usd, "
    f"arrayFilter(k -> tags[k] = '', {REQUIRED}) AS missing "
    "FROM ledger FINAL WHERE {where} AND notEmpty(missing) "
    "GROUP BY team_or_bucket, app, user, missing "
    f"ORDER BY cost_usd DESC, events DESC, team_or_bucket, app, user, missing LIMIT {TOP}"
)
TOTAL_SQL = "SELECT sum(cost_total) AS cost_usd FROM ledger FINAL WHERE {where}"


def _params(context: Context) -> dict[str, Any]:
    required = context.settings.required_tags
    envs = [env for env in required if env != "*"]
    return {
        "envs": envs,
        "lists": [required[env] for env in envs],
        "default": required.get("*", []),
    }


def _coverage_from_rollups(context: Context) -> list[dict[str, Any]] | None:
    """COVERAGE_SQL's rows from the daily rollup sums by env and the required tags, when every
    required tag is a rollup column (else None: the ledger's ``tags`` map is needed)."""
    settings = context.settings
    tags = sorted({tag for listed in settings.required_tags.values() for tag in listed} - {"env"})
    if not set(tags) <= set(TAG_DIMENSIONS):
        return None
    dims = ("env", *tags)
    daily = context.rollup_rows(dims, "sum(m_events) AS events, sum(m_cost_total) AS cost_usd")
    if daily is None:
        return None
    weekly: dict[tuple[str, date], list[Any]] = defaultdict(lambda: [0, 0, Decimal(0), Decimal(0)])
    for row in daily:
        day = date.fromisoformat(str(row["day"])[:10])
        week = day - timedelta(days=day.weekday())
        events, cost = num(row["events"]), dec(row["cost_usd"])
        for tag in settings.required_for(row["env"]):
            sums = weekly[(tag, week)]
            sums[0] += events
            sums[2] += cost
            if row[tag]:
                sums[1] += events
                sums[3] += cost
    names = ("events", "tagged_events", "cost_usd", "tagged_cost_usd")
    return [
        {"tag": tag, "week": week, **dict(zip(names, sums, strict=True))}
        for (tag, week), sums in sorted(weekly.items())
    ]


def governance(context: Context) -> InsightResult:
    rows: list[list[Any]] = []
    previous: dict[str, tuple[date, Any]] = {}
    weekly = _coverage_from_rollups(context)
    for row in weekly if weekly is not None else context.rows(COVERAGE_SQL, _params(context)):
        week = date.fromisoformat(str(row["week"])[:10])
        cost, tagged = dec(row["cost_usd"]), dec(row["tagged_cost_usd"])
        coverage = pct(tagged, cost)
        before = previous.get(row["tag"])
        change = None
        if before and before[0] == week - timedelta(days=7) and None not in (before[1], coverage):
            change = coverage - before[1]
        previous[row["tag"]] = (week, coverage)
        counts = [num(row["events"]), num(row["tagged_events"])]
        rows.append([row["tag"], week, *counts, cost, tagged, coverage, change])
    columns = ["tag", "week", "events", "tagged_events", "cost_usd", "tagged_cost_usd"]
    return InsightResult("governance", [*columns, "coverage_pct", "change_pct"], rows)


def _untagged_from_rollups(context: Context) -> tuple[Decimal, list[dict[str, Any]]] | None:
    """The period's spend and UNTAGGED_SQL's rows from the rollups (the hourly and daily sums
    by team, app, env, user and the required tags), when every required tag is a rollup column
    and the scope names only rollup dimensions; else None (the ledger's ``tags`` are needed)."""
    settings = context.settings
    tags = sorted({tag for listed in settings.required_tags.values() for tag in listed})
    found = context.window.rollup_where()
    if context.from_ledger or not set(tags) <= set(TAG_DIMENSIONS) or found is None:
        return None
    spend = context.rollup_rows((), "sum(m_cost_total) AS cost_usd") or []
    total = sum((dec(row["cost_usd"]) for row in spend), Decimal(0))
    where, where_dims, params = found
    dims = tuple(dict.fromkeys(("team", "app", "user", "env", *tags)))
    # Only sums lacking a required tag of some env are read (a tag empty in them).
    lacking = " OR ".join(f"{tag} = ''" for tag in tags) or "0"
    source = spend_source(
        dims,
        f"({where}) AND ({lacking})",
        where_dims=(*where_dims, *dims),
        measures=("events", "cost_total"),
    )
    columns = ", ".join(dims)
    sql = (
        f"SELECT {columns}, sum(m_events) AS events, sum(m_cost_total) AS cost_usd "
        f"FROM ({source}) GROUP BY {columns}"
    )
    window = window_parameters(context.window.since, context.window.until)
    sources: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for row in context.reader.query(sql, {**window, **params}).records():
        missing = tuple(tag for tag in settings.required_for(row["env"]) if not row[tag])
        if missing:
            key = (row["team"] or "unallocated", row["app"], row["user"], missing)
            sources[key][0] += num(row["events"])
            sources[key][1] += dec(row["cost_usd"])
    ranked = sorted(sources.items(), key=lambda item: (-item[1][1], -item[1][0], item[0]))
    names = ("team_or_bucket", "app", "user", "missing", "events", "cost_usd")
    return total, [dict(zip(names, (*key, *sums), strict=True)) for key, sums in ranked[:TOP]]


def untagged(context: Context) -> InsightResult:
    found = _untagged_from_rollups(context)
    if found is None:
        total = dec(context.rows(TOTAL_SQL)[0]["cost_usd"])
        sources = context.rows(UNTAGGED_SQL, _params(context))
    else:
        total, sources = found
    rows = []
    for row in sources:
        cost = dec(row["cost_usd"])
        rows.append(
            [
                row["team_or_bucket"],
                row["app"],
                row["user"],
                ",".join(row["missing"]),
                num(row["events"]),
                cost,
                pct(cost, total),
            ]
        )
    columns = ["team", "app", "user", "missing_tags", "events", "cost_usd", "share_of_spend_pct"]
    return InsightResult("untagged", columns, rows)
