"""Every insight on real chDB against figures computed here, per event, with exact Decimals.

The expected figures come from rating each generated event with the pricer (and each event
again on every candidate model) and from plain Python over the events: no SQL, no aggregation
shortcut shared with the implementation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, localcontext
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.config import DEFAULT_MODEL_TIERS, InsightsSettings
from spendstream.events import UsageEvent
from spendstream.insights import Context, InsightError, Window, run_insight
from spendstream.pricing import Rating, default_pricer
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from tests.support.insight_data import END, START, generate
from tests.support.ledger_data import fill_ledger
from tests.support.ledger_template import copy_template

pytestmark = pytest.mark.integration

SETTINGS = InsightsSettings(batch_features=["nightly"])
Rated = list[tuple[UsageEvent, Rating]]


@pytest.fixture(scope="module")
def ledger(
    tmp_path_factory: pytest.TempPathFactory, migrated_template: Path
) -> Iterator[tuple[Client, Rated]]:
    path = copy_template(migrated_template, tmp_path_factory.mktemp("insights") / "clickhouse")
    client = connect(f"chdb://{path}", "spendstream")
    rated = fill_ledger(client, generate())
    yield client, rated
    client.close()


def run(ledger: tuple[Client, Rated], name: str, **window: Any) -> list[dict[str, Any]]:
    client, _ = ledger
    context = Context(
        ClientReader(client), default_pricer(), SETTINGS, Window(START, END, **window)
    )
    result = run_insight(name, context)
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def percent(part: Decimal | int, whole: Decimal | int) -> Decimal | None:
    if not whole:
        return None
    with localcontext() as context:
        context.prec = 80
        return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.01"), ROUND_HALF_EVEN)


def quantile(values: list[int], level: float) -> int:
    ordered = sorted(values)
    return ordered[int(level * len(ordered))]


def chat(event: UsageEvent, rating: Rating) -> bool:
    return rating.priced and not event.response_cached and event.operation != "embeddings"


def test_rightsize_reprices_each_event_on_every_lower_tier_model(
    ledger: tuple[Client, Rated],
) -> None:
    pricer = default_pricer()
    groups: dict[tuple[str, str, str], Rated] = defaultdict(list)
    for event, rating in ledger[1]:
        if chat(event, rating):
            groups[(event.tag("feature"), event.provider, event.model)].append((event, rating))
    rows = run(ledger, "rightsize")
    by_key: dict[tuple[str, ...], dict[str, Any]] = {
        (r["feature"], r["provider"], r["model"], r["candidate"]): r for r in rows
    }
    for (feature, provider, model), items in groups.items():
        tiers = DEFAULT_MODEL_TIERS[provider]
        level = next(i for i, tier in enumerate(tiers) if model in tier)
        candidates = [name for tier in tiers[level + 1 :] for name in tier]
        cost = sum((rating.cost_total for _, rating in items), Decimal(0))
        inputs = [event.input_tokens for event, _ in items]
        outputs = [event.output_tokens for event, _ in items]
        for candidate in candidates or [""]:
            row = by_key.pop((feature, provider, model, candidate))
            assert row["events"] == len(items)
            assert row["requests"] == sum(event.request_count for event, _ in items)
            assert row["cost_usd"] == cost
            assert row["p50_input_tokens"] == quantile(inputs, 0.5)
            assert row["p95_input_tokens"] == quantile(inputs, 0.95)
            assert row["p50_output_tokens"] == quantile(outputs, 0.5)
            assert row["p95_output_tokens"] == quantile(outputs, 0.95)
            if candidate:
                moved = sum(
                    (
                        pricer.rate(event.model_copy(update={"model": candidate})).cost_total
                        for event, _ in items
                    ),
                    Decimal(0),
                )
                assert row["candidate_cost_usd"] == moved, (feature, candidate)
                assert row["saving_usd"] == cost - moved
                assert row["saving_pct"] == percent(cost - moved, cost)
    assert by_key == {}  # nothing beyond the expected rows
    flagged = {(r["feature"], r["model"]) for r in rows if r["flag"]}
    assert flagged == {("classify", "gpt-4o")}
    mini = next(r for r in rows if r["feature"] == "classify" and r["candidate"] == "gpt-4o-mini")
    assert mini["saving_pct"] == Decimal("94.00")  # 2.50/10.00 vs 0.15/0.60 per million


def test_rightsize_respects_scope_and_team_condition(ledger: tuple[Client, Rated]) -> None:
    assert {r["feature"] for r in run(ledger, "rightsize", scope=(("team", "support"),))} == {
        "draft"
    }
    assert {r["feature"] for r in run(ledger, "rightsize", scope=(("app", "etl"),))} == {
        "nightly",
        "report",
    }
    rows = run(
        ledger, "rightsize", team_sql="team IN {t:Array(String)}", team_params={"t": ["growth"]}
    )
    assert {r["feature"] for r in rows} == {"nightly", "report"}
    with pytest.raises(InsightError, match="not a tag name"):
        Window(START, END, scope=(("Bad Key", "x"),))


def test_batch_saving_is_the_discount_on_non_batch_spend(ledger: tuple[Client, Rated]) -> None:
    expected: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for event, rating in ledger[1]:
        marked = event.tag("feature") == "nightly" or event.tag("interactive") == "false"
        if marked and rating.priced and not event.response_cached:
            expected[event.tag("feature")][int(event.batch)] += rating.cost_total
    rows = {r["feature"]: r for r in run(ledger, "batch")}
    assert set(rows) == {"nightly", "report"}
    for feature, (unbatched, batched) in expected.items():
        assert rows[feature]["cost_usd"] == unbatched
        assert rows[feature]["batched_cost_usd"] == batched
        assert rows[feature]["saving_usd"] == unbatched * Decimal("0.5")  # openai: 50 % off


def _repeats(rated: Rated, window_s: int) -> Rated:
    """Unserved priced chat events whose prompt went to the same model <= window_s before."""
    series: dict[tuple[str, str, str], Rated] = defaultdict(list)
    for event, rating in rated:
        if chat(event, rating) and event.prompt_hash:
            series[(event.provider, event.model, event.prompt_hash)].append((event, rating))
    out: Rated = []
    for items in series.values():
        items.sort(key=lambda pair: (pair[0].event_time, pair[0].event_id))
        for (before, _), (event, rating) in pairwise(items):
            if event.event_time - before.event_time <= timedelta(seconds=window_s):
                out.append((event, rating))
    return out


def _realised(rated: Rated) -> dict[tuple[str, str, str], Decimal]:
    """The cache_savings audit formula, per event, rates truncated at 18 decimals as SQL does."""
    sums: dict[tuple[str, bool], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for event, rating in rated:
        uncached = event.input_tokens - event.cache_read_tokens - event.cache_write_tokens
        if rating.priced and not event.response_cached and uncached > 0:
            sums[(rating.price_ref, event.batch)][0] += rating.cost_input
            sums[(rating.price_ref, event.batch)][1] += uncached
    with localcontext() as context:
        context.prec = 80
        rates = {k: (c / t).quantize(Decimal("1e-18"), ROUND_DOWN) for k, (c, t) in sums.items()}
        out: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
        for event, rating in rated:
            rate = rates.get((rating.price_ref, event.batch))
            cached = event.cache_read_tokens + event.cache_write_tokens
            if rating.priced and not event.response_cached and cached and rate is not None:
                gross = event.cache_read_tokens * rate - rating.cost_cache_read
                premium = rating.cost_cache_write - event.cache_write_tokens * rate
                out[(event.tag("feature"), event.provider, event.model)] += gross - premium
    return out


def test_caching_kinds_match_per_event_figures(ledger: tuple[Client, Rated]) -> None:
    pricer, rated = default_pricer(), ledger[1]
    expected: dict[tuple[str, ...], list[Any]] = defaultdict(lambda: [0, 0, Decimal(0)])

    def add(event: UsageEvent, kind: str, events: int, tokens: int, usd: Decimal) -> None:
        entry = expected[(event.tag("feature"), event.provider, event.model, kind)]
        entry[0], entry[1], entry[2] = entry[0] + events, entry[1] + tokens, entry[2] + usd

    for event, rating in _repeats(rated, SETTINGS.paid_twice_window_s):
        add(event, "paid_twice", 1, event.input_tokens + event.output_tokens, rating.cost_total)
    for event, rating in _repeats(rated, SETTINGS.prompt_cache_window_s):
        uncached = event.input_tokens - event.cache_read_tokens - event.cache_write_tokens
        cached = event.model_copy(update={"cache_read_tokens": event.cache_read_tokens + uncached})
        add(
            event,
            "prompt_cache_opportunity",
            1,
            uncached,
            rating.cost_total - pricer.rate(cached).cost_total,
        )
    for event, rating in rated:
        if event.response_cached:
            would = pricer.rate(event.model_copy(update={"response_cached": False})).cost_total
            assert rating.cost_total == 0 and rating.cost_avoided == would
            add(event, "response_cache", 1, event.input_tokens + event.output_tokens, would)
        used_cache = event.cache_read_tokens or event.cache_write_tokens
        if rating.priced and not event.response_cached and used_cache:
            add(event, "prompt_cache_realised", 1, event.cache_read_tokens, Decimal(0))
    for key, usd in _realised(rated).items():
        expected[(*key, "prompt_cache_realised")][2] += usd
    rows = run(ledger, "caching")
    got = {
        (r["feature"], r["provider"], r["model"], r["kind"]): [r["events"], r["tokens"], r["usd"]]
        for r in rows
    }
    assert got == dict(expected)
    kinds = {key[3] for key in got}
    assert kinds == {
        "paid_twice",
        "prompt_cache_opportunity",
        "response_cache",
        "prompt_cache_realised",
    }
    assert got[("classify", "openai", "gpt-4o", "paid_twice")][0] >= 100  # the 60 s copies


def test_prompts_weekly_percentiles_and_growth(ledger: tuple[Client, Rated]) -> None:
    weeks: dict[tuple[str, date], list[int]] = defaultdict(list)
    for event, _ in ledger[1]:
        if event.operation != "embeddings":
            monday = event.event_time.date() - timedelta(days=event.event_time.weekday())
            weeks[(event.tag("feature"), monday)].append(event.input_tokens)
    rows = run(ledger, "prompts")
    assert [(r["feature"], r["week"]) for r in rows] == sorted(weeks)
    for row in rows:
        values = weeks[(row["feature"], row["week"])]
        assert (row["events"], row["p50_input_tokens"], row["p95_input_tokens"]) == (
            len(values),
            quantile(values, 0.5),
            quantile(values, 0.95),
        )
        before = weeks.get((row["feature"], row["week"] - timedelta(days=7)))
        change = None
        if before:
            change = percent(quantile(values, 0.5) - quantile(before, 0.5), quantile(before, 0.5))
        assert row["p50_change_pct"] == change
    growth = run(ledger, "prompt_growth")
    assert growth[0]["feature"] == "draft"  # its prompts double over the three weeks
    first = weeks[("draft", START.date())]
    last = weeks[("draft", START.date() + timedelta(weeks=2))]
    expected = percent(quantile(last, 0.5) - quantile(first, 0.5), quantile(first, 0.5))
    assert growth[0]["growth_pct"] == expected and expected is not None and expected > 50


def test_truncation_share_and_spend(ledger: tuple[Client, Rated]) -> None:
    groups: dict[tuple[str, str, str], Rated] = defaultdict(list)
    for event, rating in ledger[1]:
        groups[(event.tag("feature"), event.provider, event.model)].append((event, rating))
    rows = {(r["feature"], r["provider"], r["model"]): r for r in run(ledger, "truncation")}
    assert set(rows) == set(groups)
    for key, items in groups.items():
        cut = [(e, r) for e, r in items if e.finish_reason == "length"]
        reporting = sum(1 for e, _ in items if e.finish_reason)
        cost = sum((r.cost_total for _, r in items), Decimal(0))
        cut_cost = sum((r.cost_total for _, r in cut), Decimal(0))
        row = rows[key]
        assert (row["events"], row["reporting_events"], row["truncated_events"]) == (
            len(items),
            reporting,
            len(cut),
        )
        assert row["truncated_share_pct"] == percent(len(cut), reporting)
        assert (row["cost_usd"], row["truncated_cost_usd"]) == (cost, cut_cost)
        assert row["truncated_spend_pct"] == percent(cut_cost, cost)
    assert rows[("legacy", "mistral", "no-such-model")]["truncated_share_pct"] == Decimal("100.00")


def test_embeddings_re_embedding(ledger: tuple[Client, Rated]) -> None:
    seen: set[tuple[str, str, str]] = set()
    repeated, again, total, events = 0, Decimal(0), Decimal(0), 0
    items = sorted(
        ((e, r) for e, r in ledger[1] if e.operation == "embeddings"),
        key=lambda pair: (pair[0].event_time, pair[0].event_id),
    )
    for event, rating in items:
        key = (event.provider, event.model, event.prompt_hash or "")
        events, total = events + 1, total + rating.cost_total
        if key in seen:
            repeated, again = repeated + 1, again + rating.cost_total
        seen.add(key)
    [row] = run(ledger, "embeddings")
    assert (row["feature"], row["events"], row["cost_usd"]) == ("search_embed", events, total)
    assert (row["repeated_events"], row["re_embedding_usd"]) == (repeated, again)
    assert row["re_embedding_pct"] == percent(again, total) and repeated > 200


def test_unknown_insight_names_the_valid_ones(ledger: tuple[Client, Rated]) -> None:
    with pytest.raises(InsightError, match="rightsize"):
        run(ledger, "nope")
