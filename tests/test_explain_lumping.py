"""Explain's users merged in SQL (explain.lumping) over a real ledger: the lean drivers rollups
equal ``ledger FINAL`` to the last digit for periods cut anywhere, the merged cells equal
merging every cell in Python (``cells.lump_users``) exactly, so the decomposition is the same,
and migration 70 fills the lean drivers rollups of a ledger written by the previous release
without changing any total."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.events import UsageEvent
from spendstream.explain import Scope
from spendstream.explain.cells import (
    GROUP_DIMENSIONS,
    LEAN_CELL_DIMENSIONS,
    OTHER_USERS,
    Measures,
    lump_users,
    read_cells,
)
from spendstream.explain.decompose import decompose
from spendstream.explain.lumping import rank_groups, read_both
from spendstream.explain.report import drivers_of
from spendstream.pricing import default_pricer
from spendstream.sinks import migrations as ledger_schema
from spendstream.sinks.access import ClientReader, QueryResult
from spendstream.sinks.client import connect
from spendstream.sinks.insight_cells import REFRESH_CELLS
from spendstream.sinks.ledger import (
    REFRESH_STEPS,
    LedgerEntry,
    LedgerWriter,
    rollup_from_ledger_sql,
    rollup_from_rollup_sql,
)
from spendstream.sinks.migrations import DRIVER_DIMENSIONS, DRIVER_TABLES, LEAN_DRIVER_TABLES
from spendstream.sinks.pool import PooledReader
from spendstream.worker.schema import MIGRATIONS, migrate
from tests.support import ledger_data
from tests.support.ledger_template import DATABASE
from tests.test_explain_ledger import PERIODS

pytestmark = pytest.mark.integration

# The previous release's drivers steps: keyed by DRIVER_DIMENSIONS only.
PREVIOUS_DRIVER_STEPS = [
    ("minute", rollup_from_ledger_sql("minute", DRIVER_TABLES["minute"], DRIVER_DIMENSIONS)),
    *(
        (
            unit,
            rollup_from_rollup_sql(
                unit, source, DRIVER_TABLES[unit], DRIVER_TABLES[source], DRIVER_DIMENSIONS
            ),
        )
        for unit, source in (("hour", "minute"), ("day", "hour"))
    ),
]
SEARCH = Scope({}, "team IN {scope_teams:Array(String)}", {"scope_teams": ["search"]})


def figures(cells: dict) -> dict:
    """Every figure of each cell (unit maps without the zero entries a sum may leave)."""

    def nonzero(values: dict) -> dict:
        return {unit: value for unit, value in values.items() if value}

    return {
        key: (
            c.requests,
            c.input_tokens,
            c.output_tokens,
            c.cache_read_tokens,
            c.cost_uncached,
            c.cost_cache_read,
            c.cost_output,
            c.cost_total,
            nonzero(dict(c.unit_quantities)),
            nonzero(dict(c.unit_costs)),
        )
        for key, c in cells.items()
    }


def lean_ledger(client: Client, since: datetime, until: datetime) -> dict:
    dims = ", ".join(LEAN_CELL_DIMENSIONS)
    found = client.query(
        f"SELECT {dims}, sum(request_count), sum(input_tokens), sum(output_tokens), "
        "sum(cost_total) FROM ledger FINAL "
        "WHERE event_time >= {since:DateTime64(3)} AND event_time < {until:DateTime64(3)} "
        f"GROUP BY {dims}",
        parameters={"since": since, "until": until},
    ).result_rows
    return {tuple(row[:7]): tuple(row[7:]) for row in found}


def assert_same_as_python_lumping(client: Client, scope: Scope, keep: int) -> None:
    reader = ClientReader(client)
    merged = 0
    for period, baseline in PERIODS:
        full_before = read_cells(reader, scope, *baseline)
        full_after = read_cells(reader, scope, *period)
        expected = lump_users(full_before, full_after, keep)
        got = read_both(reader, scope, period, baseline, keep)
        merged += any(key[4] == OTHER_USERS for key in (*got[0], *got[1]))
        for want, have in zip(expected, got, strict=True):
            assert figures(have) == figures(want)
        old = {c.key: c.parts for c in decompose(*expected)}
        new = {c.key: c.parts for c in decompose(*got)}
        assert new == old
    assert merged  # the merging did happen


def test_lean_drivers_equal_the_ledger_and_merging_equals_python(ledger_client: Client) -> None:
    ledger_data.fill_ledger(ledger_client, ledger_data.generate(4_000, seed=7))
    reader = ClientReader(ledger_client)
    for period, baseline in PERIODS:
        for since, until in (period, baseline):
            lean = read_cells(reader, Scope(), since, until, LEAN_CELL_DIMENSIONS)
            got = {
                key: (c.requests, c.input_tokens, c.output_tokens, c.cost_total)
                for key, c in lean.items()
            }
            assert got == lean_ledger(ledger_client, since, until)
    for keep in (1, 5, 17):
        assert_same_as_python_lumping(ledger_client, Scope(), keep)
    assert_same_as_python_lumping(ledger_client, SEARCH, 3)
    assert_same_as_python_lumping(ledger_client, Scope({"feature": ["qa"]}), 4)


def test_ranking_counts_groups_and_few_groups_read_every_cell(ledger_client: Client) -> None:
    ledger_data.fill_ledger(ledger_client, ledger_data.generate(2_000, seed=9))
    reader = ClientReader(ledger_client)
    period, baseline = PERIODS[0]
    before = read_cells(reader, Scope(), *baseline)
    after = read_cells(reader, Scope(), *period)
    groups = {key[:5] for key in (*before, *after)}
    ranked, counted = rank_groups(reader, Scope(), period, baseline, 4)
    assert counted == len(groups) and len(ranked) == 4
    both = read_both(reader, Scope(), period, baseline, len(groups))
    assert figures(both[0]) == figures(before) and figures(both[1]) == figures(after)


def test_lean_drivers_migration_keeps_every_total(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'old'}", "spendstream")
    # 75 (insight cells) reads 12's long_input too, and 78 and 79 add to its cells; 1008's view
    # writes the drivers minutes' columns of 70 (a release without 70 never had 1008)
    later = (12, 70, 75, 78, 79, 1008)
    ledger_schema.migrate(client, [m for m in MIGRATIONS if m.version not in later])
    # Written by the previous release's writer: drivers by DRIVER_DIMENSIONS, no lean drivers.
    pricer = default_pricer()
    events = ledger_data.generate(3_000, seed=5)
    old_steps = [
        s for s in REFRESH_STEPS if "drivers" not in s[1] and s[1] != REFRESH_CELLS
    ] + PREVIOUS_DRIVER_STEPS
    LedgerWriter(client, 1, old_steps).write([LedgerEntry(e, pricer.rate(e)) for e in events])
    totals = (
        "SELECT (SELECT sum(cost_total) FROM ledger FINAL), (SELECT count() FROM ledger FINAL), "
        "(SELECT sum(cost_total) FROM rollup_hour_drivers FINAL), "
        "(SELECT sum(events) FROM rollup_day_drivers FINAL)"
    )
    before = client.query(totals).result_rows[0]
    assert migrate(client) == list(later)
    assert client.query(totals).result_rows[0] == before
    for table in (*LEAN_DRIVER_TABLES.values(), *DRIVER_TABLES.values()):
        found = client.query(f"SELECT sum(cost_total), sum(events) FROM {table} FINAL")
        assert found.result_rows[0] == (before[0], before[1])
        # Keyed again by the new dimensions: the long calls' spend is where it belongs.
        long_calls = client.query(
            f"SELECT sum(cost_total), count(DISTINCT long_input) FROM {table} FINAL "
            "WHERE long_input > 0"
        ).result_rows[0]
        assert (
            long_calls
            == client.query(
                "SELECT sum(cost_total), count(DISTINCT input_tokens) FROM ledger FINAL "
                "WHERE input_tokens > 32768"
            ).result_rows[0]
        )
        assert long_calls[1] > 0
    reader = ClientReader(client)
    for period, _baseline in PERIODS:
        lean = read_cells(reader, Scope(), *period, LEAN_CELL_DIMENSIONS)
        got = {
            k: (c.requests, c.input_tokens, c.output_tokens, c.cost_total) for k, c in lean.items()
        }
        assert got == lean_ledger(client, *period)
    assert_same_as_python_lumping(client, Scope(), 5)
    # The release's writer keeps them in step from then on.
    more = ledger_data.generate(500, seed=6)
    LedgerWriter(client, 1).write([LedgerEntry(e, pricer.rate(e)) for e in more])
    assert_same_as_python_lumping(client, Scope(), 5)
    client.close()


def test_measures_subtract_exactly() -> None:
    from decimal import Decimal as D

    units = ({"img": D(2)}, {"img": D("0.04")})
    a = Measures(3, 30, 9, 5, D("0.3"), D("0.01"), D("0.2"), D("0.51"), *units)
    b = Measures(1, 10, 3, 0, D("0.1"), D(0), D("0.05"), D("0.15"))
    assert (a - b) + b == a
    assert (a - a).is_empty() and not (a - b).is_empty()


class StreamBeforeReads(ClientReader):
    """A reader over a real ledger that writes ``event`` afresh (the stream going on) just
    before each merged read of the period starting at ``since``, after the ranking saw the
    ledger without it."""

    def __init__(self, client: Client, event: UsageEvent, since: datetime) -> None:
        super().__init__(client)
        self.event, self.since, self.merged_reads = event, since, 0

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult:
        params = parameters or {}
        if "explain_h1" in params and params.get("since") == self.since:
            self.merged_reads += 1
            fresh = self.event.model_copy(update={"event_id": uuid.uuid4().hex})
            LedgerWriter(self.client, 1).write([LedgerEntry(fresh, default_pricer().rate(fresh))])
        return super().query(sql, parameters)


def test_calls_landing_after_the_ranking_leave_the_drivers_adding_up(
    ledger_client: Client,
) -> None:
    # The README tour's failure (previous design): a kept user's call landing between the
    # lean read and the named read took a cell of the other users below nothing. Each period
    # is now one query: its cells are what the ledger held when it ran.
    ledger_data.fill_ledger(ledger_client, ledger_data.generate(2_000, seed=3))
    period, baseline = PERIODS[0]
    ranked, _groups = rank_groups(ClientReader(ledger_client), Scope(), period, baseline, 2)
    call = UsageEvent(  # in a cell none of the generated events has: batch gpt-4o
        event_time=period[0] + timedelta(hours=5),
        provider="openai",
        model="gpt-4o",
        input_tokens=1_000,
        output_tokens=200,
        batch=True,
        tags={k: v for k, v in zip(GROUP_DIMENSIONS, ranked[0], strict=True) if v},
    )
    reader = StreamBeforeReads(ledger_client, call, period[0])
    before, after = read_both(reader, Scope(), period, baseline, 2)
    assert reader.merged_reads == 1
    assert any(key[:5] == ranked[0] and key[-1] for key in after)  # the call is in
    for cells in (before, after):
        assert all(
            c.requests > 0 and min(c.input_tokens, c.output_tokens) >= 0 for c in cells.values()
        )
    changes = decompose(before, after)
    drivers = drivers_of(changes)
    delta = sum((c.delta for c in changes), Decimal(0))
    assert sum((d.amount for d in drivers), Decimal(0)) == delta
    fresh = ClientReader(ledger_client)
    full = lump_users(read_cells(fresh, Scope(), *baseline), read_cells(fresh, Scope(), *period), 2)
    assert figures(before) == figures(full[0]) and figures(after) == figures(full[1])


class MeetingReader(PooledReader):
    """A pool of two clients on which each period's cells read waits at a barrier for the
    other period's: reads made one after the other never meet, and the barrier breaks."""

    def __init__(self, path: Path) -> None:
        super().__init__(lambda: connect(f"chdb://{path}", DATABASE), size=2)
        self.barrier = threading.Barrier(2, timeout=30)
        self.met = 0

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult:
        if "since" in (parameters or {}):  # a cells read (the ranking's are b_/a_ prefixed)
            self.barrier.wait()
            self.met += 1
        return super().query(sql, parameters)


def test_both_periods_read_at_once_on_a_pool_equal_reads_in_turn(
    ledger_client: Client, chdb_path: Path
) -> None:
    ledger_data.fill_ledger(ledger_client, ledger_data.generate(2_000, seed=11))
    pool = MeetingReader(chdb_path)
    alone = ClientReader(ledger_client)
    try:
        cases = [(scope, keep) for scope in (Scope(), SEARCH) for keep in (3, 10_000)]
        cases.append((Scope({"user": ["ann", "bob"]}), 1))  # every cell, lumped after
        for period, baseline in PERIODS:
            for scope, keep in cases:
                want = read_both(alone, scope, period, baseline, keep)
                got = read_both(pool, scope, period, baseline, keep)
                assert [figures(side) for side in got] == [figures(side) for side in want]
        assert pool.met == 2 * len(PERIODS) * len(cases)
    finally:
        pool.close()
