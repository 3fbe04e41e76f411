"""The ledger INSERT builds each block's columns as the driver writes that block
(``sinks.columns.built_per_block``, issue 29): the rows stored are those of the columns built
for the whole slice at once, a block that cannot be built fails the INSERT whole, and a retry
is stored once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError

from spendstream.sinks import ledger as ledger_module
from spendstream.sinks.client import connect
from spendstream.sinks.columns import driver_takes_blocks
from spendstream.sinks.entry import LEDGER_COLUMNS, LedgerEntry, ledger_columns
from spendstream.sinks.ledger import LedgerWriter
from tests.support.chdb_http import ChdbHttpServer
from tests.support.ledger_template import DATABASE
from tests.test_ledger_columns import entries

COMPARED = [name for name in LEDGER_COLUMNS if name != "ingested_at"]
READ = f"SELECT {', '.join(COMPARED)} FROM {{}} FINAL ORDER BY event_id"


def slice_of(count: int) -> list[LedgerEntry]:
    fast, slow = entries(count, 5)  # the same events: take each from one side
    return fast[::2] + slow[1::2]


def test_blocks_store_the_rows_of_the_whole_slice(ledger_client: Client) -> None:
    rows = slice_of(2_600)  # ~2.5 blocks of 1,024, fast and reference entries mixed
    writer = LedgerWriter(ledger_client, 3)
    writer.insert(rows)
    ledger_client.command("CREATE TABLE ledger_whole AS ledger")
    ledger_client.insert(
        "ledger_whole",
        ledger_columns(rows, 3, datetime.now(UTC), scaled_money=True),
        column_names=LEDGER_COLUMNS,
        column_types=writer.ledger_column_types(),
        column_oriented=True,
    )
    stored = ledger_client.query(READ.format("ledger")).result_rows
    assert len(stored) == len({entry.event.event_id for entry in rows}) > 2_048
    assert stored == ledger_client.query(READ.format("ledger_whole")).result_rows
    writer.insert(rows)  # a retry: the same token, stored once
    assert ledger_client.command("SELECT count() FROM ledger") == len(stored)


def test_a_block_that_cannot_be_built_fails_the_insert_whole(
    ledger_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[int] = []
    real = ledger_module.block_columns

    def failing(part: Sequence[LedgerEntry], **kwargs: Any) -> list[list[Any]]:
        built.append(len(part))
        if len(built) == 2:
            raise ValueError("block two")
        return real(part, **kwargs)

    monkeypatch.setattr(ledger_module, "block_columns", failing)
    with pytest.raises(ValueError, match="block two"):
        LedgerWriter(ledger_client, 1).insert(slice_of(2_600))
    assert built[:2] == [1_024, 1_024]
    assert ledger_client.command("SELECT count() FROM ledger") == 0


@pytest.mark.integration
def test_over_http_a_block_that_cannot_be_built_fails_the_insert_whole(
    clickhouse_server: ChdbHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(the worker's transport: the body is streamed, so the first block has left already)"""
    client = connect(clickhouse_server.dsn, DATABASE)
    test_a_block_that_cannot_be_built_fails_the_insert_whole(client, monkeypatch)
    client.close()


def test_the_build_error_is_raised_whatever_the_transport_made_of_it(
    ledger_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over HTTP a proxy's 502 or a closed connection would be reported instead (transient:
    retried as an outage, never isolated): the writer raises the block's own error."""
    real = ledger_module.block_columns

    def failing(part: Sequence[LedgerEntry], **kwargs: Any) -> list[list[Any]]:
        if len(part) < 1_024:
            raise ValueError("the last block")
        return real(part, **kwargs)

    def lost_connection(context: Any) -> None:
        for _ in context.next_block():  # the driver writes the blocks, then the link drops
            pass
        raise OperationalError("connection closed")

    monkeypatch.setattr(ledger_module, "block_columns", failing)
    monkeypatch.setattr(ledger_client, "data_insert", lost_connection)
    with pytest.raises(ValueError, match="the last block"):
        LedgerWriter(ledger_client, 1).insert(slice_of(2_600))


def test_a_driver_version_not_tested_gets_every_column_at_once(
    ledger_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import clickhouse_connect

    assert driver_takes_blocks()  # the installed driver: per block (the test above proves it)
    built: list[int] = []
    real = ledger_module.block_columns

    def counting(part: Sequence[LedgerEntry], **kwargs: Any) -> list[list[Any]]:
        built.append(len(part))
        return real(part, **kwargs)

    monkeypatch.setattr(ledger_module, "block_columns", counting)
    monkeypatch.setattr(clickhouse_connect, "__version__", "1.14.0")
    rows = slice_of(2_600)
    LedgerWriter(ledger_client, 1).insert(rows)
    assert built == [len(rows)]
    assert ledger_client.command("SELECT count() FROM ledger") == len(
        {entry.event.event_id for entry in rows}
    )
