"""The tag groups' stored hashes (migration 1004, ``sinks.group_hash``) and Explain's ranking by
them (``explain.lumping``) over a real ledger: the migration keeps every total of a ledger
written by the previous release and stores each row's hashes, the refresh keeps them after,
and groups tied at the keep boundary are kept exactly as merging every cell in Python
(``cells.lump_users``) keeps them."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.events import UsageEvent
from spendstream.explain import Scope
from spendstream.explain.cells import OTHER_USERS, lump_users, read_cells
from spendstream.explain.lumping import TIES, rank_hashes, read_both
from spendstream.sinks import migrations as ledger_schema
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from spendstream.sinks.group_hash import GROUP_HASHES, HASH_EXPRESSIONS, HASHED_TABLES
from spendstream.worker.schema import MIGRATIONS, migrate
from tests.support import ledger_data
from tests.test_explain_ledger import PERIODS
from tests.test_explain_lumping import figures

pytestmark = pytest.mark.integration

TOTALS = ", ".join(
    f"(SELECT sum(cost_total), sum({'events' if table != 'ledger' else '1'}) FROM {table} FINAL)"
    for table in ("ledger", *HASHED_TABLES)
)


def stale_hashes(client: Client) -> list[tuple[str, tuple[int, int]]]:
    """Per hashed table (and the ledger): (rows whose hashes differ from the values', rows)."""
    wrong = " OR ".join(f"{name} != {expression}" for name, expression in HASH_EXPRESSIONS)
    found = []
    for table in ("ledger", *HASHED_TABLES):
        stale, rows = client.query(f"SELECT countIf({wrong}), count() FROM {table}").result_rows[0]
        found.append((table, (int(stale), int(rows))))
    return found


def test_migration_keeps_every_total_and_stores_the_hashes(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'old'}", "spendstream")
    # The previous release: every migration but 1004 (nothing newer is built on it).
    ledger_schema.migrate(client, [m for m in MIGRATIONS if m.version != 1004])
    ledger_data.fill_ledger(client, ledger_data.generate(3_000, seed=12))
    before = client.query(f"SELECT {TOTALS}").result_rows[0]
    assert migrate(client) == [1004]
    assert client.query(f"SELECT {TOTALS}").result_rows[0] == before
    for table in HASHED_TABLES:  # every part rewritten with them, not only computed at read
        parts, hashed = client.query(
            "SELECT (SELECT count() FROM system.parts WHERE database = currentDatabase() "
            "AND table = {t:String} AND active), (SELECT count() FROM system.parts_columns "
            "WHERE database = currentDatabase() AND table = {t:String} AND active "
            "AND column = {c:String})",
            parameters={"t": table, "c": GROUP_HASHES[1]},
        ).result_rows[0]
        assert hashed == parts > 0, table
    for table, (wrong, rows) in stale_hashes(client):
        assert wrong == 0 and rows > 0, table
    # The release's writer keeps them (computed as each refresh writes its rows).
    ledger_data.fill_ledger(client, ledger_data.generate(500, seed=13))
    for table, (wrong, _rows) in stale_hashes(client):
        assert wrong == 0, table
    reader = ClientReader(client)
    period, baseline = PERIODS[0]
    every = read_cells(reader, Scope(), *baseline), read_cells(reader, Scope(), *period)
    got = read_both(reader, Scope(), period, baseline, 5)
    assert [figures(side) for side in got] == [figures(side) for side in lump_users(*every, 5)]
    client.close()


def tied_calls(count: int, since: datetime) -> list[UsageEvent]:
    """``count`` users with one identical, large call each in the period: groups whose spend
    moved by the same amount, more than any generated group's."""
    return [
        UsageEvent(
            event_time=since + timedelta(hours=5),
            provider="anthropic",
            model="claude-sonnet-4-5",
            input_tokens=400_000,
            output_tokens=20_000,
            tags={"team": "search", "app": "web", "feature": "qa", "user": f"tie-{index}"},
        )
        for index in range(count)
    ]


@pytest.mark.parametrize(
    ("keep", "in_sql"), [(2, False), (1, True)], ids=["ties-in-python", "ties-in-sql"]
)
def test_groups_tied_at_the_boundary_are_kept_by_their_values(
    ledger_client: Client, keep: int, in_sql: bool
) -> None:
    period, baseline = PERIODS[0]
    ledger_data.fill_ledger(
        ledger_client, [*ledger_data.generate(2_000, seed=14), *tied_calls(4, period[0])]
    )
    reader = ClientReader(ledger_client)
    candidates, groups = rank_hashes(reader, Scope(), period, baseline, keep)
    assert groups > keep and len(candidates) == 4  # all four tied, at the top
    assert (len(candidates) > TIES * keep) is in_sql
    got = read_both(reader, Scope(), period, baseline, keep)
    every = read_cells(reader, Scope(), *baseline), read_cells(reader, Scope(), *period)
    expected = lump_users(*every, keep)
    assert [figures(side) for side in got] == [figures(side) for side in expected]
    named = {key[4] for key in got[1] if key[4].startswith("tie-")}
    assert named == {f"tie-{index}" for index in range(keep)}  # the values break the tie
    assert any(key[4] == OTHER_USERS for key in got[1])
