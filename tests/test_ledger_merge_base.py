"""Migration 1006: the ledger's merge selector base (docs/benchmarks-ingest.md, session 11).

On a ledger and rollups written by the previous release, the migration changes no row and no
total; the ledger then merges with the new base, and after a full merge every total is the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.sinks import migrations as ledger_schema
from spendstream.sinks.client import connect
from spendstream.sinks.ledger import LedgerWriter
from spendstream.worker.schema import MIGRATIONS
from tests.test_open_windows import batches, snapshot

TOTALS = (
    "SELECT count(), sum(cost_total), sum(input_tokens), sum(output_tokens), "
    "groupBitXor(cityHash64(event_id)) FROM ledger FINAL"
)


def merge_base(client: Client) -> str:
    """The ledger's merge_selector_base: its own setting, else the server's default."""
    query = "SELECT value FROM system.merge_tree_settings WHERE name = 'merge_selector_base'"
    default = str(client.command(query))
    create = str(
        client.command(
            "SELECT create_table_query FROM system.tables "
            "WHERE database = currentDatabase() AND name = 'ledger'"
        )
    )
    marker = "merge_selector_base = "
    return create.split(marker, 1)[1].split(",")[0].split()[0] if marker in create else default


@pytest.mark.storage
def test_migration_1006_keeps_a_previous_ledger_and_every_total(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'previous'}", "spendstream")
    ledger_schema.migrate(client, [step for step in MIGRATIONS if step.version != 1006])
    assert merge_base(client) == "5"  # ClickHouse's default, as the previous release left it
    writer = LedgerWriter(client, 1)
    stream = list(batches(400, 40))
    for batch in stream:  # ten parts, as a stream writes them
        writer.write(batch)
    before = snapshot(client), client.query(TOTALS).result_rows
    assert ledger_schema.migrate(client, MIGRATIONS) == [1006]
    assert merge_base(client) == "10"
    assert (snapshot(client), client.query(TOTALS).result_rows) == before
    for batch in stream:  # the same events again (a replay): stored once
        writer.write(batch)
    client.command("OPTIMIZE TABLE ledger FINAL")
    assert (snapshot(client), client.query(TOTALS).result_rows) == before
    parts = client.command(
        "SELECT count() FROM system.parts WHERE active AND database = currentDatabase() "
        "AND table = 'ledger'"
    )
    assert int(str(parts)) == len(
        {entry.event.event_time.month for entry in next(batches(400, 400))}
    )
    client.close()
