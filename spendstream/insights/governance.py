"""Tag governance: ``governance`` (coverage of required tags, weekly) and ``untagged`` (the
sources of untagged spend to fix first).

The required tags of an event depend on its ``env`` tag (``[insights] required_tags``, with
``"*"`` for every other env). Events lacking one are stored as they came (``untagged_policy =
"unallocated"``, the default; a missing team shows as ``unallocated``) or dead-lettered by the
worker (``"dead_letter"``).

governance, per required tag and ISO week (Monday, UTC), over the events that require it::

    coverage_pct = spend of those events carrying a non-empty value / their spend x 100

with ``events``, ``tagged_events`` and ``change_pct`` (coverage points against the tag's
previous week). untagged, per (team, app, user) of events lacking at least one required tag:
events, ``cost_usd``, the missing tags, and the share of the period's spend; largest first.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from spendstream.insights.base import Context, InsightResult, dec, num, pct

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
UNTAGGED_SQL = (
    "SELECT if(team = '', 'unallocated', team) AS team_or_bucket, app, user, "
    "count() AS events, sum(cost_total) AS cost_usd, "
    f"arrayFilter(k -> tags[k] = '', {REQUIRED}) AS missing "
    "FROM ledger FINAL WHERE {where} AND notEmpty(missing) "
    "GROUP BY team_or_bucket, app, user, missing ORDER BY cost_usd DESC, events DESC LIMIT 50"
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


def governance(context: Context) -> InsightResult:
    rows: list[list[Any]] = []
    previous: dict[str, tuple[date, Any]] = {}
    for row in context.rows(COVERAGE_SQL, _params(context)):
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


def untagged(context: Context) -> InsightResult:
    total = dec(context.rows(TOTAL_SQL)[0]["cost_usd"])
    rows = []
    for row in context.rows(UNTAGGED_SQL, _params(context)):
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
