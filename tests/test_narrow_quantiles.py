"""The cells' narrow 32-bit token quantile states (migration 79, ``sinks.insight_cells``): a
ledger whose cells were written by the previous release (wide states only) is migrated, its
totals unchanged; merged narrow states give the ledger's ``quantileExact`` on planted traffic
with ties and even counts, and a token count above 2^32 - 1 (clipped in the narrow states)
sends the readers to the wide states, so every insight and the recommendations still equal the
same read of ``ledger FINAL``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.config import InsightsSettings
from spendstream.events import UsageEvent
from spendstream.insights import Context, Window
from spendstream.insights.cells import quantile_cell_rows
from spendstream.insights.models import CELL_STATS_SQL, TOKEN_QUANTILES
from spendstream.pricing import default_pricer
from spendstream.sinks import migrations as ledger_schema
from spendstream.sinks.access import ClientReader
from spendstream.sinks.client import connect
from spendstream.sinks.insight_cells import (
    ADDED_MEASURES,
    CELLS_TABLE,
    NARROW_LIMIT,
    NARROW_STATES,
)
from spendstream.sinks.ledger import REFRESH_STEPS
from spendstream.worker.schema import MIGRATIONS, migrate
from tests.support.insight_data import END, START, generate
from tests.test_insight_cells import (
    CELL_PERIODS,
    CELL_TOTALS,
    TOTALS,
    assert_cells_equal_ledger,
    write,
)

pytestmark = pytest.mark.integration

# Ties and an even count: quantileExact takes the element at floor(level x n) of the sorted
# values (p50 of these 8 is 30; quantileExactWeighted would say 20).
TIES = (10, 10, 20, 20, 30, 30, 40, 40)
HUGE = 5_000_000_000  # above NARROW_LIMIT: clipped in the narrow states
# The insights that merge the token quantile states (the recommendations too, through their
# statistics), in the periods that read whole hours from the cells: whole weeks, and cut
# mid-hour (its edges from the ledger). The others (batch, caching, truncation) read no
# quantile state, and a period inside one hour reads no cell: both are compared in
# tests/test_insight_cells.py, and here once, after migrations 78 and 79 in one step.
QUANTILE_READERS = ("rightsize", "prompts", "prompt_growth")


def planted() -> list[UsageEvent]:
    events = []
    for feature, inputs in (("ties", TIES * 3), ("huge", (7, HUGE, HUGE, HUGE))):
        for index, tokens in enumerate(inputs):
            events.append(
                UsageEvent(
                    event_time=START + timedelta(days=index % 5, hours=index, minutes=7 * index),
                    provider="openai",
                    model="gpt-4o-mini",
                    input_tokens=tokens,
                    output_tokens=TIES[index % len(TIES)],
                    tags={"team": "search", "feature": feature},
                )
            )
    return events


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A ledger and cells as the release before 79 left them: no narrow state columns."""
    path: Path = tmp_path_factory.mktemp("narrow-quantiles") / "clickhouse"
    client = connect(f"chdb://{path}", "spendstream")
    ledger_schema.migrate(client, [m for m in MIGRATIONS if m.version != 79])
    write(client, [*generate(), *planted()], REFRESH_STEPS)
    client.command(
        f"ALTER TABLE {CELLS_TABLE} "
        + ", ".join(f"DROP COLUMN {name}" for name in NARROW_STATES.values())
    )
    yield client
    client.close()


def test_cells_of_a_release_before_78_upgrade_through_78_and_79_in_one_step(
    tmp_path: Path,
) -> None:
    """Cells written before migration 78 (neither its measures nor 79's states): 78's fill
    writes every column of today's cells, so it must add 79's too."""
    client = connect(f"chdb://{tmp_path / 'clickhouse'}", "spendstream")
    ledger_schema.migrate(client, [m for m in MIGRATIONS if m.version not in (78, 79)])
    write(client, [*generate(), *planted()], REFRESH_STEPS)
    dropped = (*ADDED_MEASURES, *NARROW_STATES.values())
    client.command(f"ALTER TABLE {CELLS_TABLE} " + ", ".join(f"DROP COLUMN {n}" for n in dropped))
    totals = client.query(TOTALS).result_rows
    assert migrate(client) == [78, 79]
    assert client.query(TOTALS).result_rows == totals == client.query(CELL_TOTALS).result_rows
    assert merged(client, "ties", "input_quantiles32") == [30, 40]
    assert_cells_equal_ledger(client)
    client.close()


def merged(client: Client, feature: str, states: str) -> list[list[int]]:
    return client.query(
        f"SELECT quantilesExactMerge(0.5, 0.95)({states}) FROM {CELLS_TABLE} FINAL "
        "WHERE feature = {f:String} AND events > 0",
        parameters={"f": feature},
    ).result_rows[0][0]


def test_migration_79_fills_the_narrow_states_on_cells_written_before(client: Client) -> None:
    totals = client.query(TOTALS).result_rows
    cell_totals = client.query(CELL_TOTALS).result_rows
    assert migrate(client) == [79]
    assert client.query(TOTALS).result_rows == totals  # the ledger is untouched
    assert client.query(CELL_TOTALS).result_rows == cell_totals == totals
    assert migrate(client) == []
    for feature in ("ties", "huge", "classify", "draft"):
        exact = client.query(
            "SELECT quantilesExact(0.5, 0.95)(input_tokens) FROM ledger FINAL "
            "WHERE feature = {f:String}",
            parameters={"f": feature},
        ).result_rows[0][0]
        assert merged(client, feature, "input_quantiles") == exact
        if feature != "huge":
            assert merged(client, feature, "input_quantiles32") == exact
    assert merged(client, "ties", "input_quantiles32") == [30, 40]
    # clipped: the narrow states cannot tell HUGE, the wide ones can
    assert merged(client, "huge", "input_quantiles32") == [NARROW_LIMIT, NARROW_LIMIT]
    assert merged(client, "huge", "input_quantiles") == [HUGE, HUGE]


def test_a_clipped_quantile_is_read_from_the_wide_states(client: Client) -> None:
    migrate(client)
    context = Context(
        ClientReader(client), default_pricer(), InsightsSettings(), Window(START, END)
    )
    rows = quantile_cell_rows(context, CELL_STATS_SQL, TOKEN_QUANTILES)
    assert rows is not None
    by_feature = {row["feature"]: row for row in rows if row["model"] == "gpt-4o-mini"}
    assert (by_feature["huge"]["p50_in"], by_feature["huge"]["p95_in"]) == (HUGE, HUGE)
    assert (by_feature["ties"]["p50_in"], by_feature["ties"]["p95_in"]) == (30, 40)
    assert (by_feature["ties"]["p50_out"], by_feature["ties"]["p95_out"]) == (30, 40)


def test_insights_and_recommendations_from_the_narrow_states_equal_the_ledger(
    client: Client,
) -> None:
    migrate(client)
    assert_cells_equal_ledger(client, QUANTILE_READERS, CELL_PERIODS)
    # batches written after the migration keep them equal (one delivered again)
    later = generate(seed=9)[:2000]
    write(client, later, REFRESH_STEPS)
    write(client, [*later[1500:], *planted()], REFRESH_STEPS)
    assert_cells_equal_ledger(client, QUANTILE_READERS, CELL_PERIODS)
