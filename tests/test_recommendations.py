"""Recommendations on real chDB against figures computed here per event with exact Decimals.

The planted traffic is tests.support.insight_data (three weeks). Expected figures come from
rating each event with the pricer (again on each candidate model, or as batch) and plain Python
over the events; the caching kinds are compared with the caching insight, which
tests/test_insights.py holds to per-event figures.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.advice import digest_advice, store
from spendstream.advice.model import monthly, rec_id
from spendstream.advice.recommend import build
from spendstream.advice.service import Advisor
from spendstream.config import DEFAULT_MODEL_TIERS, InsightsSettings
from spendstream.events import UsageEvent
from spendstream.insights import Context, Window, run_insight
from spendstream.pricing import Rating, default_pricer
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from spendstream.worker.schema import migrate
from tests.support.insight_data import END, START, generate
from tests.support.ledger_data import fill_ledger
from tests.support.ledger_template import copy_template

pytestmark = pytest.mark.integration

SETTINGS = InsightsSettings(batch_features=["nightly"])
DAYS = (END - START).days
Rated = list[tuple[UsageEvent, Rating]]


@pytest.fixture(scope="module")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("advice") / "clickhouse"  # one chDB directory per process


@pytest.fixture(scope="module")
def ledger(chdb_path: Path, migrated_template: Path) -> Iterator[tuple[Client, Rated]]:
    client = connect(f"chdb://{copy_template(migrated_template, chdb_path)}", "spendstream")
    yield client, fill_ledger(client, generate())
    client.close()


def advisor(client: Client) -> Advisor:
    return Advisor(ClientReader(client), default_pricer(), SETTINGS)


def percent(part: Decimal, whole: Decimal) -> Decimal:
    with localcontext() as context:
        context.prec = 80
        return (part * 100 / whole).quantize(Decimal("0.01"), ROUND_HALF_EVEN)


def key(event: UsageEvent) -> tuple[str, str, str]:
    return (event.tag("feature"), event.provider, event.model)


def test_rightsize_batch_and_embeddings_equal_per_event_figures(
    ledger: tuple[Client, Rated],
) -> None:
    client, rated = ledger
    pricer = default_pricer()
    recs = advisor(client).recommendations(END, DAYS)
    by_id = {r.rec_id: r for r in recs}
    scope_cost: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    chat: dict[tuple[str, str, str], Rated] = defaultdict(list)
    for event, rating in rated:
        scope_cost[key(event)] += rating.cost_total
        if rating.priced and not event.response_cached and event.operation != "embeddings":
            chat[key(event)].append((event, rating))
    rightsized = 0
    for (feature, provider, model), items in chat.items():
        tiers = DEFAULT_MODEL_TIERS[provider]
        level = next(i for i, tier in enumerate(tiers) if model in tier)
        cost = sum((r.cost_total - r.cost_units for _, r in items), Decimal(0))
        savings = {
            name: cost
            - sum(
                (pricer.rate(e.model_copy(update={"model": name})).cost_total for e, _ in items),
                Decimal(0),
            )
            for tier in tiers[level + 1 :]
            for name in tier
        }
        positive = sorted(
            ((s, n) for n, s in savings.items() if s > 0), key=lambda p: (-p[0], p[1])
        )
        found = [
            r
            for r in recs
            if r.kind == "rightsize"
            and r.scope.get("feature") == feature
            and r.scope.get("model") == model
        ]
        if not positive:
            assert found == []
            continue
        rightsized += 1
        (rec,) = found
        best_saving, best = positive[0]
        assert rec.evidence["candidate"] == best and rec.saving_usd == best_saving
        assert rec.monthly_usd == monthly(best_saving, DAYS)
        assert rec.scope_cost_usd == scope_cost[(feature, provider, model)]
        assert rec.share_pct == percent(best_saving, scope_cost[(feature, provider, model)])
        assert [(a.model, a.saving_usd) for a in rec.alternatives] == [
            (n, s) for s, n in positive[1:]
        ]  # alternatives inside the row, never repeated rows
        assert rec.rec_id == rec_id("rightsize", rec.scope) and rec.rec_id in by_id
        assert rec.explore.startswith("/explore?") and "feature%3D" in rec.explore
        assert any("quality" in caveat for caveat in rec.caveats)
    assert rightsized >= 2
    classify = next(r for r in recs if r.kind == "rightsize" and r.scope["feature"] == "classify")
    assert classify.scope == {
        "team": "search",
        "app": "web",
        "feature": "classify",
        "provider": "openai",
        "model": "gpt-4o",
    }
    inputs = sorted(e.input_tokens for e, _ in rated if key(e) == ("classify", "openai", "gpt-4o"))
    assert classify.evidence["p50_in_tokens"] == inputs[len(inputs) // 2]
    assert classify.evidence["p95_in_tokens"] == inputs[int(0.95 * len(inputs))]
    assert classify.evidence["events"] == len(inputs) and classify.evidence["days"] == DAYS

    unbatched: dict[str, Decimal] = defaultdict(Decimal)
    reembedded: dict[str, Decimal] = defaultdict(Decimal)
    seen: set[tuple[str, str, str]] = set()
    for event, rating in sorted(rated, key=lambda p: (p[0].event_time, p[0].event_id)):
        marked = event.tag("feature") == "nightly" or event.tag("interactive") == "false"
        if marked and rating.priced and not event.response_cached and not event.batch:
            unbatched[event.tag("feature")] += rating.cost_total
        if event.operation == "embeddings" and event.prompt_hash:
            content = (event.provider, event.model, event.prompt_hash)
            if content in seen:
                reembedded[event.tag("feature")] += rating.cost_total
            seen.add(content)
    batch = {r.scope["feature"]: r for r in recs if r.kind == "batch"}
    assert {f: r.saving_usd for f, r in batch.items()} == {
        f: cost * Decimal("0.5") for f, cost in unbatched.items()
    }
    (embed,) = [r for r in recs if r.kind == "embeddings"]
    assert embed.saving_usd == reembedded["search_embed"] > 0
    # the list is ranked by dollars a month
    assert [r.monthly_usd for r in recs] == sorted((r.monthly_usd for r in recs), reverse=True)


def test_truncation_unpriced_and_caching_kinds(ledger: tuple[Client, Rated]) -> None:
    client, rated = ledger
    recs = advisor(client).recommendations(END, DAYS)
    cut: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for event, rating in rated:
        if event.finish_reason == "length":
            cut[key(event)] += rating.cost_total
    truncation = {
        (r.scope["feature"], r.scope["provider"], r.scope["model"]): r.saving_usd
        for r in recs
        if r.kind == "truncation"
    }
    assert truncation == {k: v for k, v in cut.items() if v > 0}
    (unpriced,) = [r for r in recs if r.kind == "unpriced"]
    assert unpriced.scope["model"] == "no-such-model" and unpriced.monthly_usd == 0
    assert unpriced.evidence["unpriced_events"] == 50
    context = Context(ClientReader(client), default_pricer(), SETTINGS, Window(START, END))
    caching = run_insight("caching", context)
    rows = [dict(zip(caching.columns, row, strict=True)) for row in caching.rows]
    for kind, rec_kind in (
        ("prompt_cache_opportunity", "prompt_cache"),
        ("paid_twice", "response_cache"),
    ):
        expected = {
            (r["feature"], r["model"]): r["usd"] for r in rows if r["kind"] == kind and r["usd"] > 0
        }
        got = {
            (r.scope["feature"], r.scope["model"]): r.saving_usd for r in recs if r.kind == rec_kind
        }
        assert got == expected and got


def test_prompt_growth_prices_the_growth_of_the_median(ledger: tuple[Client, Rated]) -> None:
    client, rated = ledger
    recs = advisor(client).recommendations(END, DAYS)
    (draft,) = [r for r in recs if r.kind == "prompt_growth" and r.scope["feature"] == "draft"]
    weeks: dict[int, list[int]] = defaultdict(list)
    input_cost = Decimal(0)
    for event, rating in rated:
        if event.tag("feature") == "draft":
            weeks[(event.event_time - START).days // 7].append(event.input_tokens)
            input_cost += rating.cost_input + rating.cost_cache_read + rating.cost_cache_write
    first, last = (sorted(weeks[w])[len(weeks[w]) // 2] for w in (min(weeks), max(weeks)))
    with localcontext() as context:
        context.prec = 80
        expected = (input_cost * (last - first) / last).quantize(Decimal("1e-18"), ROUND_HALF_EVEN)
    assert draft.saving_usd == expected > 0
    assert (draft.evidence["first_p50"], draft.evidence["last_p50"]) == (first, last)


def test_dismissed_never_comes_back(ledger: tuple[Client, Rated]) -> None:
    client, _ = ledger
    reader = ClientReader(client)
    recs = advisor(client).recommendations(END, DAYS)
    top = recs[0]
    store.record(client, top, "dismissed", "operator-1", "we need gpt-4o's answers", END)
    try:
        again = advisor(client).recommendations(END, DAYS)
        assert top.rec_id not in {r.rec_id for r in again}
        assert len(again) == len(recs) - 1
        # another period finds the same advice on the same scope: still dismissed
        later = advisor(client).recommendations(END - timedelta(days=7), 14)
        assert top.rec_id not in {r.rec_id for r in later}
        shown = advisor(client).recommendations(END, DAYS, include_dismissed=True)
        dismissed = next(r for r in shown if r.rec_id == top.rec_id)
        assert (dismissed.state, dismissed.decided_by) == ("dismissed", "operator-1")
        # the digest leaves it out too
        window = Window(END - timedelta(days=7), END)
        lines = digest_advice(Context(reader, default_pricer(), SETTINGS, window))
        assert lines and not any(top.rec_id in text for _, text in lines)
        columns, log = store.history(reader, START)
        assert [row[columns.index("state")] for row in log] == ["dismissed"]
    finally:
        store.record(client, top, "open", "operator-1", "reopened by the test", END)
    assert top.rec_id in {r.rec_id for r in advisor(client).recommendations(END, DAYS)}


def test_build_equals_the_advisor_without_decisions(ledger: tuple[Client, Rated]) -> None:
    client, _ = ledger
    context = Context(ClientReader(client), default_pricer(), SETTINGS, Window(START, END))
    built = build(context, DAYS)
    listed = advisor(client).recommendations(END, DAYS)
    assert [r.rec_id for r in built] == [r.rec_id for r in listed]
    kinds = {r.kind for r in built}
    assert kinds >= {
        "rightsize",
        "batch",
        "prompt_cache",
        "response_cache",
        "embeddings",
        "truncation",
        "prompt_growth",
        "unpriced",
    }


def test_quotas_that_never_bind_or_bind_on_most_days(ledger: tuple[Client, Rated]) -> None:
    client, _ = ledger
    decided = START + timedelta(days=20)
    decisions = [
        ["daily-cap", "user=amy", "usd", Decimal(5), Decimal(5), decided, 1],
        ["daily-cap", "user=bob", "usd", Decimal(2), Decimal(5), decided, 1],
        ["roomy", "user=amy", "usd", Decimal(10), Decimal(1000), decided, 1],
        ["roomy", "user=bob", "usd", Decimal(400), Decimal(1000), decided, 1],
        ["busy", "-", "tokens", Decimal(80), Decimal(100), decided, 1],
    ]
    client.insert(
        "quota_decisions",
        decisions,
        column_names=["quota", "key", "unit", "used", "limit", "as_of", "version"],
    )
    blocks = [  # daily-cap blocks on 12 of the 21 days (twice on day 0); busy once
        [f"t-{i}", "daily-cap", "user=amy", "block", START + timedelta(days=max(i - 1, 0)), 1]
        for i in range(13)
    ] + [["t-busy", "busy", "-", "block", START + timedelta(days=3), 1]]
    client.insert(
        "quota_transitions",
        blocks,
        column_names=["transition_id", "quota", "key", "kind", "at", "version"],
    )
    try:
        recs = advisor(client).recommendations(END, DAYS)
        found = {(r.kind, r.scope["quota"]): r for r in recs if r.kind.startswith("quota_")}
        assert set(found) == {("quota_binding", "daily-cap"), ("quota_idle", "roomy")}
        binding = found[("quota_binding", "daily-cap")]
        assert binding.evidence["block_days"] == 12 and binding.evidence["blocks"] == 13
        assert binding.monthly_usd == 0 and "12 of 21 days" in binding.action
        assert found[("quota_idle", "roomy")].evidence["peak_use_pct"] == Decimal("40.00")
        # quotas span teams: a team-scoped caller gets no quota advice
        scoped = advisor(client).recommendations(
            END, DAYS, team_sql="team = 'search'", teams=frozenset({"search"})
        )
        assert not [r for r in scoped if r.kind.startswith("quota_")]
    finally:
        client.command("TRUNCATE TABLE quota_decisions")
        client.command("TRUNCATE TABLE quota_transitions")


def _figures(rated: Rated, since: Any, until: Any) -> tuple[int, Decimal]:
    chosen = [(e, r) for e, r in rated if since <= e.event_time < until]
    return sum(e.request_count for e, _ in chosen), sum(
        (r.cost_total for _, r in chosen), Decimal(0)
    )


def test_realised_savings_on_a_planted_before_and_after(
    ledger: tuple[Client, Rated], chdb_path: Path
) -> None:
    accepted = START + timedelta(days=10)
    events = []
    for i in range(400):  # 10 days on gpt-4o, then 10 days on gpt-4o-mini, same prompts
        day = timedelta(hours=i * 6 // 5, minutes=i % 60)
        model = "gpt-4o" if i < 200 else "gpt-4o-mini"
        events.append(
            UsageEvent(
                event_time=START + day,
                provider="openai",
                model=model,
                input_tokens=300 + i % 50,
                output_tokens=40 + i % 30,
                request_count=1 + i % 2,
                tags={"team": "search", "app": "web", "feature": "qa"},
            )
        )
    assert (
        max(e.event_time for e in events[:200])
        < accepted
        <= min(e.event_time for e in events[200:])
    )
    client = connect(f"chdb://{chdb_path}", "realised")  # a database of its own
    try:
        migrate(client)
        rated = fill_ledger(client, events)
        listed = advisor(client).recommendations(accepted, 10)
        (qa,) = [r for r in listed if r.kind == "rightsize"]
        store.record(client, qa, "accepted", "operator-1", "moving qa to a smaller model", accepted)
        for until, days in (
            (accepted + timedelta(days=5), 10),
            (accepted + timedelta(days=20), 10),
        ):
            recs = advisor(client).recommendations(until, days)
            rec = next(r for r in recs if r.rec_id == qa.rec_id)
            assert rec.state == "accepted" and rec.realised is not None
            before_n, before_cost = _figures(rated, accepted - timedelta(days=days), accepted)
            after_n, after_cost = _figures(rated, accepted, until)
            with localcontext() as context:
                context.prec = 80
                q = Decimal("1e-18")
                before = (before_cost / before_n).quantize(q, ROUND_HALF_EVEN)
                after = (after_cost / after_n).quantize(q, ROUND_HALF_EVEN)
                seconds = Decimal((until - accepted).total_seconds())
                saved = ((before - after) * after_n * 30 * 86_400 / seconds).quantize(
                    q, ROUND_HALF_EVEN
                )
            realised = rec.realised
            assert (realised.before_requests, realised.before_cost_usd) == (before_n, before_cost)
            assert (realised.after_requests, realised.after_cost_usd) == (after_n, after_cost)
            assert realised.before_cost_per_request == before
            assert realised.after_cost_per_request == after < before
            assert realised.monthly_usd == saved > 0
        # 20 days on, the period holds only the new model: the row comes from the decision log
        assert rec.saving_usd == 0 and "projected_monthly_usd_when_accepted" in rec.evidence
        assert rec.evidence["projected_monthly_usd_when_accepted"] == qa.monthly_usd
        # a caller of another team does not see it
        other = advisor(client).recommendations(
            accepted + timedelta(days=20), 10, team_sql="team = 'x'", teams=frozenset({"x"})
        )
        assert other == []
    finally:
        client.close()
