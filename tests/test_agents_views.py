"""Runs, sessions and customers read from their rollups, exactly: the sum over runs, the sum over
customers and the ledger agree to the last digit; percentiles, waterfalls and margins on planted
data; a team-scoped reader sees its team only (real chDB, the worker's ledger writer)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from clickhouse_connect.driver.client import Client

from spendstream.api.routes_agents import agents_router
from spendstream.auth.roles import Principal, Role
from spendstream.events import UsageEvent
from spendstream.pricing import default_pricer
from spendstream.sinks.access import ClientReader, QueryResult, jsonable, wire_parameters
from spendstream.sinks.agent_views import (
    margins,
    run_steps,
    runs_by_agent,
    sessions,
    spend_by_customer,
    top_runs,
)
from spendstream.sinks.ledger import LedgerEntry, LedgerWriter
from spendstream.sinks.revenue import Revenue, RevenueError, parse_revenue_csv, store_revenue
from spendstream.sinks.sqlguard import SqlGuard, reader_parser
from tests.support.agent_data import START, agent_runs
from tests.support.http_app import ServedApp, TokenAuthenticator

pytestmark = pytest.mark.integration
EVERY_TEAM = ("1", {})
SINCE, UNTIL = START - timedelta(days=1), START + timedelta(days=10)


@pytest.fixture(scope="module")
def events() -> list[UsageEvent]:
    return list(agent_runs(400))


@pytest.fixture
def written(ledger_client: Client, events: list[UsageEvent]) -> ClientReader:
    pricer = default_pricer()
    writer = LedgerWriter(ledger_client, 1)
    for start in range(0, len(events), 700):  # several batches, as the worker writes them
        writer.write([LedgerEntry(e, pricer.rate(e)) for e in events[start : start + 700]])
    writer.write([LedgerEntry(e, pricer.rate(e)) for e in events[:50]])  # a redelivery
    return ClientReader(ledger_client)


def test_runs_customers_and_ledger_sum_to_the_same_figure(
    written: ClientReader, events: list[UsageEvent]
) -> None:
    pricer = default_pricer()
    cost = {e.event_id: pricer.rate(e).cost_total for e in events}
    [[ledger_total]] = written.query("SELECT sum(cost_total) FROM ledger FINAL").rows
    assert ledger_total == sum(cost.values())
    by_agent = runs_by_agent(written, SINCE, UNTIL, EVERY_TEAM).records()
    outside_runs = sum(cost[e.event_id] for e in events if e.run_id is None)
    assert sum(row["cost"] for row in by_agent) + outside_runs == ledger_total
    every_run = top_runs(written, SINCE, UNTIL, EVERY_TEAM, limit=10_000).records()
    assert len(every_run) == 400
    assert sum(row["cost"] for row in every_run) + outside_runs == ledger_total
    customers = spend_by_customer(written, SINCE, UNTIL, EVERY_TEAM).records()
    assert sum(row["cost"] for row in customers) == ledger_total
    per_feature = spend_by_customer(written, SINCE, UNTIL, EVERY_TEAM, by_feature=True)
    assert sum(row["cost"] for row in per_feature.records()) == ledger_total
    trend = spend_by_customer(written, SINCE, UNTIL, EVERY_TEAM, granularity="day").records()
    assert sum(row["cost"] for row in trend) == ledger_total
    expected: dict[str, Decimal] = defaultdict(Decimal)
    for event in events:
        expected[event.customer or ""] += cost[event.event_id]
    assert {row["customer"]: row["cost"] for row in customers} == expected


@pytest.mark.parametrize(
    ("since", "until"),
    [
        (START + timedelta(days=1), START + timedelta(days=1, hours=18)),  # today until now
        (START + timedelta(hours=5, minutes=17), START + timedelta(days=2, hours=7, seconds=1.5)),
        (START + timedelta(hours=1, minutes=10), START + timedelta(hours=1, minutes=50)),
    ],
)
def test_customer_spend_equals_the_ledger_over_partial_days(
    written: ClientReader, since: Any, until: Any
) -> None:
    bounds = {"since": since, "until": until}
    period = "event_time >= {since:DateTime64(3)} AND event_time < {until:DateTime64(3)}"
    for granularity, bucket in (("none", None), ("day", "toDate"), ("week", "toMonday")):
        for keys in (["customer"], ["customer", "feature"]):
            lead = [f"{bucket}(event_time) AS period"] if bucket else []
            group = ", ".join(["period", *keys] if bucket else keys)
            expected = written.query(
                f"SELECT {', '.join([*lead, *keys])}, count(), sum(cost_total) FROM ledger FINAL "
                f"WHERE {period} GROUP BY {group}",
                bounds,
            ).rows
            got = spend_by_customer(
                written, since, until, EVERY_TEAM, len(keys) == 2, granularity
            ).rows
            assert sorted(map(tuple, got)) == sorted(map(tuple, expected)) and got


def test_cost_and_steps_per_run_per_agent(written: ClientReader, events: list[UsageEvent]) -> None:
    pricer = default_pricer()
    runs: dict[str, list[UsageEvent]] = defaultdict(list)
    for event in events:
        if event.run_id:
            runs[event.run_id].append(event)
    by_agent = {
        row["agent"]: row for row in runs_by_agent(written, SINCE, UNTIL, EVERY_TEAM).records()
    }
    for agent in ("triage", "research", "coder"):
        mine = [r for r in runs.values() if r[0].agent == agent]
        costs = sorted(sum((pricer.rate(e).cost_total for e in r), Decimal(0)) for r in mine)
        steps = sorted(len(r) for r in mine)
        row = by_agent[agent]
        # quantileExact(q): the element at index floor(q * n) of the sorted values
        assert (row["runs"], row["cost_max"], row["steps_max"]) == (len(mine), costs[-1], steps[-1])
        assert row["cost_p50"] == costs[len(costs) // 2]
        assert row["cost_p95"] == costs[int(0.95 * len(costs))]
        assert row["steps_p95"] == steps[int(0.95 * len(steps))]
        tool = sum(pricer.rate(e).cost_total for r in mine for e in r if e.tool)
        assert row["tool_cost"] == tool > 0 and row["model_cost"] == row["cost"] - tool


def test_the_most_expensive_run_and_its_waterfall(
    written: ClientReader, events: list[UsageEvent]
) -> None:
    [top] = top_runs(written, SINCE, UNTIL, EVERY_TEAM, limit=1).records()
    mine = sorted((e for e in events if e.run_id == top["run_id"]), key=lambda e: e.step or 0)
    steps = run_steps(written, top["run_id"], EVERY_TEAM).records()
    assert [(s["step"], s["kind"], s["name"]) for s in steps] == [
        (e.step, "tool" if e.tool else "model", e.tool or e.model) for e in mine
    ]
    assert sum(s["cost"] for s in steps) == top["cost"]
    # The filters of the top list: only that agent's (or customer's) runs, exactly these.
    for name in ("agent", "customer"):
        value = top[name]
        chosen = top_runs(written, SINCE, UNTIL, EVERY_TEAM, 10_000, **{name: value}).records()
        wanted = {e.run_id for e in events if e.run_id and getattr(e, name) == value}
        assert {row["run_id"] for row in chosen} == wanted and wanted
    assert run_steps(written, "no-such-run", EVERY_TEAM).rows == []
    cheapest_session = sessions(written, SINCE, UNTIL, EVERY_TEAM, limit=1000).records()[-1]
    assert cheapest_session["runs"] >= 1


def test_a_team_scoped_reader_sees_its_team_only(written: ClientReader) -> None:
    web_only = ("team IN {scope_teams:Array(String)}", {"scope_teams": ["web"]})
    assert runs_by_agent(written, SINCE, UNTIL, web_only).rows == []
    assert top_runs(written, SINCE, UNTIL, web_only).rows == []
    [some_run] = top_runs(written, SINCE, UNTIL, EVERY_TEAM, limit=1).records()
    assert run_steps(written, some_run["run_id"], web_only).rows == []
    customers = spend_by_customer(written, SINCE, UNTIL, web_only).records()
    assert [row["customer"] for row in customers] == [""]  # the plain calls of team web


def test_a_run_of_two_teams_is_one_run_for_an_all_teams_reader(ledger_client: Client) -> None:
    """agent_runs keeps a row per run and team: an all-teams reader sees the run once, whole;
    a team's reader its team's part."""
    pricer = default_pricer()

    def step(run: str, number: int, team: str, minutes: int) -> UsageEvent:
        return UsageEvent(
            event_id=f"{run}-{number}",
            event_time=START + timedelta(hours=2, minutes=minutes),
            provider="openai",
            model="gpt-4o",
            input_tokens=1_000 * number,
            output_tokens=100,
            run_id=run,
            agent="mixed",
            step=number,
            tags={"team": team},
        )

    events = [step("both", 1, "a", 0), step("both", 2, "b", 3), step("both", 3, "a", 5)]
    events += [step("other", 1, "a", 20), step("other", 2, "b", 10)]
    LedgerWriter(ledger_client, 1).write([LedgerEntry(e, pricer.rate(e)) for e in events])
    reader = ClientReader(ledger_client)
    cost = {e.event_id: pricer.rate(e).cost_total for e in events}
    since, until = START + timedelta(hours=1), START + timedelta(hours=3)
    [row] = runs_by_agent(reader, since, until, EVERY_TEAM).records()
    whole = cost["both-1"] + cost["both-2"] + cost["both-3"]
    other = cost["other-1"] + cost["other-2"]
    assert (row["runs"], row["cost"], row["steps_max"]) == (2, whole + other, 3)
    assert row["cost_max"] == max(whole, other)
    [top, _] = top_runs(reader, since, until, EVERY_TEAM).records()
    assert (top["run_id"], top["cost"], top["steps"]) == ("both", whole, 3)
    team_b = ("team IN {scope_teams:Array(String)}", {"scope_teams": ["b"]})
    part = top_runs(reader, since, until, team_b).records()
    assert [(r["run_id"], r["cost"]) for r in part] == [
        ("both", cost["both-2"]),
        ("other", cost["other-2"]),
    ]
    every = top_runs(reader, since, until, EVERY_TEAM).records()
    assert sorted(r["run_id"] for r in every) == ["both", "other"]


class GuardedReader:
    """What the CLI's reads meet through a worker: every statement first passes the free-SQL
    guard of ``POST /api/v1/sql`` (which refuses a SETTINGS clause, among others), parameters
    cross as JSON and values come back as JSON (datetimes as ISO text)."""

    def __init__(self, reader: ClientReader) -> None:
        self.reader = reader
        self.guard = SqlGuard(reader_parser(reader), "spendstream")
        self.checked = 0

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        self.guard.check(sql, parameters)
        self.checked += 1
        found = self.reader.query(sql, wire_parameters(dict(parameters or {})))
        return QueryResult(found.columns, jsonable(found.rows))


def test_every_view_passes_the_free_sql_guard_as_the_cli_reads_through_a_worker(
    written: ClientReader,
) -> None:
    guarded = GuardedReader(written)
    by_agent = runs_by_agent(guarded, SINCE, UNTIL, EVERY_TEAM).records()
    [top] = top_runs(guarded, SINCE, UNTIL, EVERY_TEAM, limit=1).records()
    steps = run_steps(guarded, top["run_id"], EVERY_TEAM).records()
    assert by_agent and [step["cost"] for step in steps]
    assert steps == jsonable(run_steps(written, top["run_id"], EVERY_TEAM).records())
    assert sessions(guarded, SINCE, UNTIL, EVERY_TEAM).rows
    assert spend_by_customer(guarded, SINCE, UNTIL, EVERY_TEAM).rows
    margins(guarded, date(2026, 10, 1), date(2026, 11, 1))
    assert guarded.checked >= 6


def test_margin_per_customer_on_planted_revenue(
    written: ClientReader, ledger_client: Client, events: list[UsageEvent]
) -> None:
    pricer = default_pricer()
    cost: dict[str, Decimal] = defaultdict(Decimal)
    for event in events:
        if event.customer and event.event_time.date() < date(2026, 10, 3):
            cost[event.customer] += pricer.rate(event).cost_total
    # acme pays twice its cost, globex half of it: served at a loss.
    csv_text = "customer,period_start,period_end,amount,note\n" + "\n".join(
        f"{name},2026-10-01,2026-10-03,{amount},plan"
        for name, amount in (
            ("acme", cost["acme"] * 2),
            ("globex", (cost["globex"] / 2).quantize(Decimal("0.01"))),
        )
    )
    store_revenue(ledger_client, parse_revenue_csv(csv_text))
    found = {m.customer: m for m in margins(written, date(2026, 10, 1), date(2026, 11, 1))}
    assert set(found) == {"acme", "globex"}
    assert found["acme"].cost == cost["acme"] and found["globex"].cost == cost["globex"]
    assert found["acme"].margin > 0 and found["globex"].margin < 0
    assert found["globex"].as_dict()["at_loss"] and found["acme"].margin_pct == Decimal("50.00")
    with pytest.raises(RevenueError, match="line 3: amount"):
        parse_revenue_csv(
            "customer,period_start,period_end,amount\nacme,2026-10-01,2026-11-01,5\n"
            "globex,2026-10-01,2026-11-01,-3\n"
        )
    with pytest.raises(RevenueError, match="period_end must be after"):
        parse_revenue_csv("customer,period_start,period_end,amount\nacme,2026-10-05,2026-10-01,1\n")


TOKENS = {
    "view": Principal("dash", Role.VIEWER),
    "view-web": Principal("web-dash", Role.VIEWER, frozenset({"web"})),
    "admin": Principal("root", Role.ADMIN),
}


def test_the_http_routes_scope_by_team_and_import_revenue(
    written: ClientReader, ledger_client: Client
) -> None:
    stored: list[int] = []

    def store(rows: list[Revenue]) -> int:
        stored.append(store_revenue(ledger_client, rows))
        return stored[-1]

    window = {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}
    with ServedApp(TokenAuthenticator(TOKENS), agents_router(written, store)) as app:

        def get(path: str, token: str, **params: object) -> httpx.Response:
            return httpx.get(
                app.url + path,
                params={**window, **params},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )

        agents = get("/runs", "view").json()
        assert {row[0] for row in agents["rows"]} == {"triage", "research", "coder"}
        assert get("/runs", "view-web").json()["rows"] == []
        top = get("/runs/top", "view", limit=1).json()
        run_id = top["rows"][0][0]
        waterfall = get(f"/runs/{run_id}", "view").json()
        assert waterfall["columns"][:4] == ["step", "event_time", "kind", "name"]
        assert get(f"/runs/{run_id}", "view-web").status_code == 404
        assert get("/runs/top", "view", limit=0).status_code == 400
        assert get("/customers", "view", by_feature="true").status_code == 200
        assert get("/customers", "view", granularity="hour").status_code == 400
        assert get("/sessions", "view").json()["rows"]
        assert get("/runs", "nobody").status_code == 401
        csv_body = "customer,period_start,period_end,amount\nacme,2026-10-01,2026-10-05,1.5\n"
        post = httpx.post(
            app.url + "/revenue",
            content=csv_body,
            headers={"Authorization": "Bearer view", "Content-Type": "text/csv"},
        )
        assert post.status_code == 403  # a viewer may not import revenue
        post = httpx.post(
            app.url + "/revenue",
            content=csv_body,
            headers={"Authorization": "Bearer admin", "Content-Type": "text/csv"},
        )
        assert post.status_code == 200 and post.json() == {"stored": 1}
        bad = httpx.post(
            app.url + "/revenue",
            json=[{"customer": "acme", "period_start": "2026-10-01", "amount": "1"}],
            headers={"Authorization": "Bearer admin"},
        )
        assert bad.status_code == 400 and "item 1: period_end" in bad.text
        margin = get("/customers/margin", "view", since="2026-09-01", until="2026-12-01")
        [acme] = margin.json()["margins"]
        assert acme["customer"] == "acme" and acme["at_loss"] and margin.json()["at_loss"]
        assert get("/customers/margin", "view-web").status_code == 403
    assert stored == [1]
