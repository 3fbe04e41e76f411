"""The fast path's rows (msgspec-decoded events, scaled-integer costs, integer money columns)
land in the ledger exactly as the reference path's: every column, read back as text."""

from __future__ import annotations

import random

from clickhouse_connect.driver.client import Client

from spendstream.sinks.entry import LEDGER_COLUMNS
from spendstream.sinks.ledger import LedgerWriter
from tests.test_fastpath import packs, processors, sdk_event


def read_back(client: Client, table: str) -> list[tuple[object, ...]]:
    shown = ", ".join(f"toString({name})" for name in LEDGER_COLUMNS if name != "ingested_at")
    return list(client.query(f"SELECT {shown} FROM {table} ORDER BY event_id").result_rows)


def test_fast_and_reference_rows_are_stored_identically(ledger_client: Client) -> None:
    rng = random.Random(11)
    messages = packs([sdk_event(rng, index).to_json_bytes() for index in range(3_000)], 100)
    fast, reference = (processor.process(messages).entries for processor in processors())
    LedgerWriter(ledger_client, 5).insert(fast)
    ledger_client.command("CREATE TABLE ledger_reference AS ledger")
    ledger_client.command("RENAME TABLE ledger TO ledger_fast, ledger_reference TO ledger")
    LedgerWriter(ledger_client, 5).insert(reference)
    stored = read_back(ledger_client, "ledger_fast")
    assert len(stored) == len(fast) > 2_500
    assert stored == read_back(ledger_client, "ledger")
