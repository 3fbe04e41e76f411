"""``bench.tenfold``'s scaling is what ten copies of every event give: the insight cells' sums
ten times, their exact token quantiles those of every ledger value taken ten times, apps
unchanged; the repeats and team repeats ten times, each copy with its own prompts."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.tenfold import scale
from spendstream.sinks.client import connect
from spendstream.sinks.insight_cells import CELLS_TABLE
from spendstream.sinks.ledger import REFRESH_STEPS
from spendstream.sinks.prompt_sightings import REPEATS_TABLE
from spendstream.sinks.team_repeats import TEAM_REPEATS_TABLE
from tests.support.insight_data import generate
from tests.support.ledger_template import copy_template
from tests.test_insight_cells import write

pytestmark = pytest.mark.integration

QUANTILES, MERGE = "quantilesExact(0.5, 0.95)", "quantilesExactMerge(0.5, 0.95)"
# Per feature and model: events, spend, token quantiles, apps.
FROM_LEDGER = (
    f"SELECT feature, model, count(), sum(cost_total), {QUANTILES}(input_tokens), "
    f"{QUANTILES}(output_tokens), arraySort(groupUniqArray(app)) "
    "FROM ledger FINAL ARRAY JOIN range({copies:UInt8}) AS copy "
    "GROUP BY feature, model ORDER BY feature, model"
)
FROM_CELLS = (
    f"SELECT feature, model, sum(events), sum(cost_total), {MERGE}(input_quantiles), "
    f"{MERGE}(output_quantiles32), arraySort(groupUniqArrayMerge(apps)) "
    f"FROM {CELLS_TABLE} FINAL GROUP BY feature, model ORDER BY feature, model"
)
# Exact quantiles of values taken ten times equal the values' own: padded with as many large
# values as the ten copies hold, the median tells whether the states hold ten times the values.
PAD = 4_000_000_000
PADDED_LEDGER = (
    f"SELECT {QUANTILES}(v) FROM (SELECT toUInt64({{column:Identifier}}) AS v FROM ledger FINAL "
    f"ARRAY JOIN range(10) AS copy UNION ALL SELECT toUInt64({PAD}) FROM numbers({{pad:UInt64}}))"
)
PADDED_CELLS = (
    f"SELECT {MERGE}(s) FROM (SELECT {{state:Identifier}} AS s FROM {CELLS_TABLE} FINAL "
    f"UNION ALL SELECT {QUANTILES.replace('(', 'State(', 1)}(KIND({PAD})) "
    "FROM numbers({pad:UInt64}))"
)
COPIES = (
    "SELECT count(), uniqExact(prompt_hash), uniqExact(event_id), sum(cost_total) "
    "FROM {table} FINAL"
)


def test_ten_copies_of_every_event(tmp_path: Path, migrated_template: Path) -> None:
    path = copy_template(migrated_template, tmp_path / "clickhouse")
    client = connect(f"chdb://{path}", "spendstream")
    write(client, generate()[:6_000], REFRESH_STEPS)
    expected = client.query(FROM_LEDGER, parameters={"copies": 10}).result_rows
    assert (
        client.query(FROM_CELLS).result_rows
        == client.query(FROM_LEDGER, parameters={"copies": 1}).result_rows
    )
    repeats = {
        table: client.query(COPIES.format(table=table)).result_rows[0]
        for table in (REPEATS_TABLE, TEAM_REPEATS_TABLE)
    }
    assert all(counts[0] for counts in repeats.values())  # not a comparison of empties
    scale(client)
    assert client.query(FROM_CELLS).result_rows == expected
    pad = sum(row[2] for row in expected) - 1  # the median is the largest token count
    for column, state, kind in (
        ("input_tokens", "input_quantiles", "toUInt64"),
        ("output_tokens", "output_quantiles32", "toUInt32"),
    ):
        padded = client.query(PADDED_LEDGER, parameters={"column": column, "pad": pad})
        assert padded.result_rows[0][0][0] < PAD
        cells = client.query(
            PADDED_CELLS.replace("KIND", kind), parameters={"state": state, "pad": pad}
        )
        assert cells.result_rows == padded.result_rows
    for table, (rows, prompts, ids, cost) in repeats.items():
        assert client.query(COPIES.format(table=table)).result_rows[0] == (
            rows * 10,
            prompts * 10,
            ids * 10,
            cost * 10,
        )
    client.close()
