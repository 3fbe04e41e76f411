"""Recommendations: every insight's savings as one list of advice, largest dollars a month first.

Each insight (``spendstream.insights``) is run once over the last ``days`` days; each of its rows
with a saving becomes one :class:`~spendstream.advice.model.Recommendation` on the scope it
names (feature, provider, model; team and app when the feature runs in exactly one). The
figures:

- ``rightsize``: saving = the scope's token cost - the same tokens at the candidate's rates
  (list, or a negotiated override of the candidate in force for the traffic), for the candidate
  with the largest saving; every other candidate with a saving is an :class:`Alternative` in
  the same row.
- ``batch``: the insight's ``saving_usd`` (cost not sent as batch x the batch discount of its
  price, an override's own where one is in force).

Both are priced on the what-if's basis (``spendstream.advice.whatif``): the saving is what the
what-if of the change says, to the last digit, when the ledger was rated by the same pricing.
- ``prompt_cache``: the caching insight's ``prompt_cache_opportunity`` usd.
- ``response_cache``: the caching insight's ``paid_twice`` usd (identical requests paid again).
- ``embeddings``: ``re_embedding_usd`` (embeddings of content already embedded).
- ``truncation``: ``truncated_cost_usd``, an upper bound (answers cut at max_tokens are often
  retried or unusable; some are fine).
- ``prompt_growth``: the feature's input-token cost x (last p50 - first p50) / last p50 (what
  the prompt's growth costs, had it stayed at its first week's median; half-even to 1e-18).
- ``unpriced``: models whose events carry no price; no saving (their spend is unknown).
- ``quota_idle`` / ``quota_binding``: quotas that never came near their limit or blocked on
  most days (:mod:`spendstream.advice.quotas`); no saving.

``share_pct`` is the saving's share of the scope's spend over the period (all its costs).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from functools import partial
from typing import Any

from spendstream.advice.model import (
    ATTO,
    LIST_CAVEAT,
    PRICE_CAVEAT,
    Alternative,
    Recommendation,
    explore_link,
    monthly,
    rec_id,
)
from spendstream.advice.quotas import quotas
from spendstream.advice.stats import joined_stats, stats_reads
from spendstream.insights import models
from spendstream.insights.base import Context, InsightResult, dec, num, pct
from spendstream.insights.registry import INSIGHTS
from spendstream.pricing.compiled import EXACT
from spendstream.sinks.access import read_at_once

Key = tuple[str, str, str]


@dataclass(frozen=True)
class Stats:
    events: int
    requests: int
    cost: Decimal
    input_cost: Decimal
    unpriced: int
    tokens: dict[str, int]
    teams: list[str]
    apps: list[str]


# The insights the recommendations read, the slowest first (they start first when read at once);
# rightsize without its token quantiles, which no recommendation shows.
READS: dict[str, Callable[[Context], InsightResult]] = {
    "rightsize": partial(models.rightsize, quantiles=False),
    **{
        name: INSIGHTS[name].run
        for name in ("caching", "prompt_growth", "embeddings", "batch", "truncation")
    },
}


def read_all(context: Context) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The statistics (:mod:`spendstream.advice.stats`) and every insight of :data:`READS` (rows
    as dicts), read at once on as many threads as the reader serves queries at a time (a pool of
    clients: its size), the statistics' token quantiles first."""

    def rows(name: str) -> list[dict[str, Any]]:
        with localcontext(EXACT):
            result = READS[name](context)
        return [dict(zip(result.columns, row, strict=True)) for row in result.rows]

    *quantiles, last = stats_reads(context)  # last: the sums (or the one ledger read), quick
    insights: list[Callable[[], list[dict[str, Any]]]] = [partial(rows, name) for name in READS]
    found = read_at_once(context.reader, [*quantiles, *insights, last])
    parts = [*found[: len(quantiles)], found[-1]]
    return joined_stats(context, parts), dict(zip(READS, found[len(quantiles) : -1], strict=True))


class Builder:
    """Collects recommendations for one period; ``add`` is called once per insight row."""

    def __init__(
        self,
        context: Context,
        days: int,
        stats: list[dict[str, Any]],
        insights: dict[str, list[dict[str, Any]]],
    ) -> None:
        self.context, self.days = context, days
        self.window = context.window
        self.insights = insights
        self.stats: dict[Key, Stats] = {}
        for row in stats:
            key = (row["feature"], row["provider"], row["model"])
            tokens = {name: num(row[name]) for name in models.TOKEN_QUANTILES}
            self.stats[key] = Stats(
                num(row["events"]),
                num(row["requests"]),
                dec(row["cost_usd"]),
                dec(row["input_cost_usd"]),
                num(row["unpriced_events"]),
                tokens,
                list(row["teams"]),
                list(row["apps"]),
            )
        self.found: list[Recommendation] = []

    def scope(self, keys: Sequence[Key], **names: str) -> dict[str, str]:
        """team and app when every event of ``keys`` has the same one, then ``names``."""
        teams = {team for key in keys if key in self.stats for team in self.stats[key].teams}
        apps = {app for key in keys if key in self.stats for app in self.stats[key].apps}
        scope: dict[str, str] = {}
        if len(teams) == 1:
            scope["team"] = next(iter(teams))
        if len(apps) == 1:
            scope["app"] = next(iter(apps))
        scope.update({k: v for k, v in names.items() if v})  # an empty tag names nothing
        return scope

    def add(
        self,
        kind: str,
        keys: Sequence[Key],
        action: str,
        saving: Decimal,
        figures: dict[str, Any],
        caveats: Sequence[str],
        alternatives: Sequence[Alternative] = (),
        **names: str,
    ) -> None:
        scope = self.scope(keys, **names)
        found = [self.stats[key] for key in keys if key in self.stats]
        cost = sum((s.cost for s in found), Decimal(0))
        evidence: dict[str, Any] = {
            "since": self.window.since,
            "until": self.window.until,
            "days": self.days,
            "events": sum(s.events for s in found),
            "requests": sum(s.requests for s in found),
            "scope_cost_usd": cost,
            **figures,
        }
        if len(found) == 1:
            evidence.update({f"{k}_tokens": v for k, v in found[0].tokens.items()})
        self.found.append(
            Recommendation(
                rec_id=rec_id(kind, scope),
                kind=kind,
                scope=scope,
                action=action,
                saving_usd=saving,
                monthly_usd=monthly(saving, self.days),
                scope_cost_usd=cost,
                share_pct=pct(saving, cost),
                evidence=evidence,
                explore=explore_link(scope, self.window.since, self.window.until),
                caveats=list(caveats),
                alternatives=list(alternatives),
            )
        )

    def alternative(self, key: Key, model: str, saving: Decimal) -> Alternative:
        cost = self.stats[key].cost if key in self.stats else Decimal(0)
        return Alternative(model, saving, monthly(saving, self.days), pct(saving, cost))


def named(feature: str) -> str:
    """A feature for a sentence (traffic without the tag is still advice)."""
    return feature or "traffic without a feature tag"


def rightsize(b: Builder) -> None:
    by_key: dict[Key, list[tuple[Decimal, str, Decimal, Decimal]]] = defaultdict(list)
    for row in b.insights["rightsize"]:
        if row["saving_usd"] is not None and row["saving_usd"] > 0:
            key = (row["feature"], row["provider"], row["model"])
            figures = (row["saving_usd"], row["candidate"], row["candidate_cost_usd"])
            by_key[key].append((*figures, row["cost_usd"]))
    for key, options in by_key.items():
        options.sort(key=lambda o: (-o[0], o[1]))
        saving, best, best_cost, token_cost = options[0]
        feature, provider, model = key
        b.add(
            "rightsize",
            [key],
            f"Try {best} instead of {model} for {named(feature)}: the same tokens would cost "
            f"{saving / token_cost:.0%} less at the prices in force.",
            saving,
            {"token_cost_usd": token_cost, "candidate": best, "candidate_cost_usd": best_cost},
            [PRICE_CAVEAT, "re-priced token by token; unit costs (searches, images) unchanged"],
            [b.alternative(key, m, s) for s, m, _, _ in options[1:]],
            feature=feature,
            provider=provider,
            model=model,
        )


def batch(b: Builder) -> None:
    for row in b.insights["batch"]:
        if row["saving_usd"] > 0:
            key = (row["feature"], row["provider"], row["model"])
            b.add(
                "batch",
                [key],
                f"Send the {row['model']} calls of {named(row['feature'])} through the batch API "
                f"({row['batch_discount']:.0%} off; answers within 24 h).",
                row["saving_usd"],
                {"not_batched_cost_usd": row["cost_usd"], "batch_discount": row["batch_discount"]},
                [PRICE_CAVEAT, "only for work that can wait for an answer"],
                feature=key[0],
                provider=key[1],
                model=key[2],
            )


def caching(b: Builder) -> None:
    settings = b.context.settings
    for row in b.insights["caching"]:
        key = (row["feature"], row["provider"], row["model"])
        names = {"feature": key[0], "provider": key[1], "model": key[2]}
        if row["kind"] == "prompt_cache_opportunity" and row["usd"] > 0:
            b.add(
                "prompt_cache",
                [key],
                f"Turn on prompt caching for {named(key[0])} on {key[2]}: {row['events']} calls "
                f"repeated a prompt within {settings.prompt_cache_window_s} s.",
                row["usd"],
                {"repeated_events": row["events"], "uncached_input_tokens": row["tokens"]},
                [LIST_CAVEAT, "ignores the cache-write premium and minimum cacheable lengths"],
                **names,
            )
        elif row["kind"] == "paid_twice" and row["usd"] > 0:
            b.add(
                "response_cache",
                [key],
                f"Cache responses of {named(key[0])} on {key[2]}: {row['events']} identical "
                f"requests were paid again within {settings.paid_twice_window_s} s.",
                row["usd"],
                {"paid_twice_events": row["events"], "paid_twice_tokens": row["tokens"]},
                ["assumes the repeated answers may be served from a cache (no fresh data)"],
                **names,
            )


def embeddings(b: Builder) -> None:
    for row in b.insights["embeddings"]:
        if row["re_embedding_usd"] > 0:
            key = (row["feature"], row["provider"], row["model"])
            b.add(
                "embeddings",
                [key],
                f"Store embeddings of {named(key[0])} by content hash: {row['repeated_events']} of "
                f"{row['events']} embedded content already embedded.",
                row["re_embedding_usd"],
                {"repeated_events": row["repeated_events"], "embedding_cost_usd": row["cost_usd"]},
                ["same content and model give the same vector: safe to reuse"],
                feature=key[0],
                provider=key[1],
                model=key[2],
            )


def truncation(b: Builder) -> None:
    for row in b.insights["truncation"]:
        if row["truncated_events"] and row["truncated_cost_usd"] > 0 and row["provider"]:
            key = (row["feature"], row["provider"], row["model"])
            b.add(
                "truncation",
                [key],
                f"Raise max_tokens or ask for shorter answers in {named(key[0])} on {key[2]}: "
                f"{row['truncated_share_pct']}% of answers were cut off.",
                row["truncated_cost_usd"],
                {
                    "truncated_events": row["truncated_events"],
                    "reporting_events": row["reporting_events"],
                    "truncated_share_pct": row["truncated_share_pct"],
                },
                ["upper bound: the spend on cut-off answers, often retried or unusable"],
                feature=key[0],
                provider=key[1],
                model=key[2],
            )


def prompt_growth(b: Builder) -> None:
    for row in b.insights["prompt_growth"]:
        first, last = row["first_p50"], row["last_p50"]
        if not last or last <= first:
            continue
        keys = [key for key in b.stats if key[0] == row["feature"]]
        input_cost = sum((b.stats[key].input_cost for key in keys), Decimal(0))
        with localcontext() as exact:
            exact.prec = 80
            saving = (input_cost * (last - first) / last).quantize(ATTO, ROUND_HALF_EVEN)
        if saving <= 0:
            continue
        b.add(
            "prompt_growth",
            keys,
            f"Trim the prompts of {named(row['feature'])}: the median grew {row['growth_pct']}% "
            f"({first} to {last} tokens) from {row['first_week']} to {row['last_week']}.",
            saving,
            {"first_p50": first, "last_p50": last, "input_cost_usd": input_cost},
            ["assumes the prompt could return to its first week's median length"],
            feature=row["feature"],
        )


def unpriced(b: Builder) -> None:
    totals: dict[tuple[str, str], list[Key]] = defaultdict(list)
    for key, stats in b.stats.items():
        if stats.unpriced:
            totals[(key[1], key[2])].append(key)
    for (provider, model), keys in totals.items():
        events = sum(b.stats[key].unpriced for key in keys)
        b.add(
            "unpriced",
            keys,
            f"Add a price for {provider}/{model}: {events} events carry no cost, so every "
            "total that includes them is understated.",
            Decimal(0),
            {"unpriced_events": events},
            ["their spend is unknown until priced (spendstream prices, [pricing] overrides)"],
            provider=provider,
            model=model,
        )


KINDS: dict[str, Callable[[Builder], None]] = {
    "rightsize": rightsize,
    "batch": batch,
    "prompt_cache": caching,  # caching also yields response_cache
    "embeddings": embeddings,
    "truncation": truncation,
    "prompt_growth": prompt_growth,
    "unpriced": unpriced,
    "quota": quotas,  # quota_idle and quota_binding
}


def build(context: Context, days: int) -> list[Recommendation]:
    """Every recommendation over ``context``'s window (the last ``days`` days), largest
    monthly saving first (ties: kind, then scope)."""
    stats, insights = read_all(context)
    with localcontext(EXACT):
        builder = Builder(context, days, stats, insights)
        for kind in KINDS.values():
            kind(builder)
    found = builder.found
    found.sort(key=lambda r: (-r.monthly_usd, r.kind, sorted(r.scope.items())))
    return found


def last_days(now: datetime, days: int) -> tuple[datetime, datetime]:
    """The period ``[now - days, now)`` the recommendations read."""
    return now - timedelta(days=days), now
