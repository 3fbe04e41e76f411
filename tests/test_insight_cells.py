"""The insight cells (migration 75, ``sinks.insight_cells``): a ledger written by the previous
release (no cells) is migrated, its totals unchanged, and every insight and the recommendations
read from the cells equal the same read of ``ledger FINAL`` to the last digit (whole weeks,
periods cut mid-hour, a period inside one hour, team conditions and scopes); batches written
afterwards (one of them delivered twice) keep them equal."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.advice.recommend import build
from spendstream.advice.stats import joined_stats, stats_reads, stats_rows
from spendstream.config import InsightsSettings
from spendstream.events import UsageEvent
from spendstream.insights import Context, Window, run_insight
from spendstream.pricing import Pricer, default_pricer
from spendstream.pricing.catalog import load_catalog
from spendstream.pricing.overrides import Override
from spendstream.sinks import migrations as ledger_schema
from spendstream.sinks.access import ClientReader, concurrency
from spendstream.sinks.client import connect
from spendstream.sinks.insight_cells import CELLS_TABLE, REFRESH_CELLS
from spendstream.sinks.ledger import REFRESH_STEPS, LedgerEntry, LedgerWriter
from spendstream.sinks.pool import PooledReader
from spendstream.sinks.price_versions import next_price_version
from spendstream.sinks.rerating import reprice
from spendstream.worker.schema import MIGRATIONS, migrate
from tests.support.insight_data import END, START, generate
from tests.test_whatif_rollups import long_calls

pytestmark = pytest.mark.integration

SETTINGS = InsightsSettings(batch_features=["nightly"])
NAMES = ("rightsize", "batch", "caching", "prompts", "prompt_growth", "truncation")
PERIODS = (
    (START, END),
    (START + timedelta(days=1, hours=5, minutes=17), END - timedelta(days=2, minutes=41)),
    (START + timedelta(days=3, hours=2, minutes=5), START + timedelta(days=3, hours=2, minutes=55)),
)
# The periods that read whole hours from the cells: a period inside one hour reads none (its
# edges come from the ledger), so after later writes it would compare the ledger with itself.
CELL_PERIODS = PERIODS[:2]
WINDOWS: tuple[dict[str, Any], ...] = (
    {},
    {"team_sql": "team IN {t:Array(String)}", "team_params": {"t": ["search", "growth"]}},
    {"scope": (("feature", "draft"),)},
    {"scope": (("model", "gpt-4o"), ("operation", "chat"))},
)
# A re-rating that moves gpt-4o's events to another price_ref (an override is part of it).
GPT_4O_CUT = Override(
    name="4o-cut", provider="openai", model="gpt-4o", input=Decimal("1.0"), output=Decimal("4.0")
)
TOTALS = "SELECT count(), sum(cost_total), sum(input_tokens), sum(output_tokens) FROM ledger FINAL"
CELL_TOTALS = (
    "SELECT sum(events), sum(cost_total), sum(input_tokens), sum(output_tokens) "
    f"FROM {CELLS_TABLE} FINAL"
)


def write(client: Client, events: list[UsageEvent], steps: tuple[tuple[str, str], ...]) -> None:
    pricer = default_pricer()
    version = next_price_version(client, "stream", pricer.catalog_digest)
    entries = [LedgerEntry(event, pricer.rate(event)) for event in events]
    LedgerWriter(client, version, steps).write(entries)


def figures(
    client: Client,
    since: datetime,
    until: datetime,
    from_ledger: bool,
    names: tuple[str, ...] = NAMES,
) -> list[Any]:
    """Every insight of ``names`` (default: all the cells serve) and the recommendations, for
    each window condition."""
    found: list[Any] = []
    for window in WINDOWS:
        context = Context(
            ClientReader(client),
            default_pricer(),
            SETTINGS,
            Window(since, until, **window),
            from_ledger=from_ledger,
        )
        for name in names:
            result = run_insight(name, context)
            found.append((name, window, result.columns, result.rows))
        found.append(("recommendations", window, build(context, 21)))
    return found


def assert_cells_equal_ledger(
    client: Client,
    names: tuple[str, ...] = NAMES,
    periods: tuple[tuple[datetime, datetime], ...] = PERIODS,
) -> None:
    assert client.query(CELL_TOTALS).result_rows == client.query(TOTALS).result_rows
    for since, until in periods:
        cells = figures(client, since, until, False, names)
        ledger = figures(client, since, until, True, names)
        for got, expected in zip(cells, ledger, strict=True):
            assert got == expected, (since, until, got[:2])


def written_before(
    path: Path, versions: tuple[int, ...], steps: tuple[str, ...], events: list[UsageEvent]
) -> Client:
    """A ledger written by the release before migrations ``versions`` and their refresh
    ``steps`` (a migration held back holds back those built on it)."""
    client = connect(f"chdb://{path}", "spendstream")
    ledger_schema.migrate(client, [m for m in MIGRATIONS if m.version not in versions])
    write(client, events, tuple(each for each in REFRESH_STEPS if each[1] not in steps))
    return client


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("insight-cells") / "clickhouse"


@pytest.fixture(scope="module")
def client(path: Path) -> Iterator[Client]:
    """A ledger written by the release before the cells (no migration 75, nor 78 and 79, which
    add to them; no cells refresh step)."""
    client = written_before(path, (75, 78, 79), (REFRESH_CELLS,), [*generate(), *long_calls()])
    yield client
    client.close()


def test_migration_fills_the_cells_from_a_ledger_written_before(client: Client) -> None:
    totals = client.query(TOTALS).result_rows
    assert migrate(client) == [75, 78, 79]
    assert client.query(TOTALS).result_rows == totals  # the ledger is untouched
    assert_cells_equal_ledger(client)
    assert migrate(client) == []


def test_batches_written_after_keep_the_cells_equal(client: Client) -> None:
    migrate(client)
    later = generate(seed=8)[:3000]
    write(client, later[:2000], REFRESH_STEPS)
    write(client, later[1000:], REFRESH_STEPS)  # 1,000 delivered again: counted once
    assert client.query(TOTALS).result_rows[0][0] == len(generate()) + len(long_calls()) + 3000
    assert_cells_equal_ledger(client, periods=CELL_PERIODS)


def test_a_re_rating_that_moves_events_to_another_price_empties_their_old_cells(
    client: Client,
) -> None:
    # A price_ref (and priced) is a cell key: before the fix the old cell stayed beside the new
    # one and every insight read from the cells counted those events twice.
    migrate(client)
    since = START + timedelta(days=1, hours=3)
    re_rated = reprice(
        client, Pricer(load_catalog(), [GPT_4O_CUT]), since, since + timedelta(days=3)
    )
    assert re_rated.changed
    emptied = client.query(f"SELECT count() FROM {CELLS_TABLE} FINAL WHERE events = 0")
    assert emptied.result_rows[0][0] > 0  # the old price's cells are still there, empty
    assert_cells_equal_ledger(client, periods=CELL_PERIODS)


def test_recommendations_read_at_once_on_a_pool_equal_one_read_at_a_time(
    client: Client, path: Path
) -> None:
    migrate(client)
    pool = PooledReader(lambda: connect(f"chdb://{path}", "spendstream"), size=3)
    try:
        for since, until in PERIODS[:2]:
            for window in WINDOWS[:2]:
                one, many = (
                    Context(reader, default_pricer(), SETTINGS, Window(since, until, **window))
                    for reader in (ClientReader(client), pool)
                )
                assert concurrency(one.reader) == 1 and concurrency(many.reader) == 3
                found = build(many, 21)
                assert found and found == build(one, 21)
    finally:
        pool.close()


def test_statistics_read_apart_join_by_key_and_are_read_again_when_the_keys_differ(
    client: Client, path: Path
) -> None:
    """Through a pool the statistics are three reads (both token quantiles, the sums); joined
    they equal the one query's rows. Parts that disagree on the keys (the cells refreshed
    between the reads) are not joined: the statistics are read again in one query."""
    migrate(client)
    since, until = PERIODS[0]
    pool = PooledReader(lambda: connect(f"chdb://{path}", "spendstream"), size=2)
    try:
        context = Context(pool, default_pricer(), SETTINGS, Window(since, until))
        reads = stats_reads(context)
        assert len(reads) == 3
        parts = [read() for read in reads]
        whole = stats_rows(context)

        def by_key(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
            return {(row["feature"], row["provider"], row["model"]): row for row in rows}

        assert len(whole) > 1 and by_key(joined_stats(context, parts)) == by_key(whole)
        assert all(len(part) == len(whole) for part in parts)
        shorter = [parts[0][1:], *parts[1:]]  # a key the quantile read did not see
        assert by_key(joined_stats(context, shorter)) == by_key(whole)
        assert "p50_in" not in by_key(shorter[-1]).popitem()[1]  # the sums alone lack them
    finally:
        pool.close()
