"""The CLI's reads of a chDB directory no worker holds: several queries at a time, as through a
worker's API (Explain's two periods, the recommendations' parts), and every client closed after
the command (chDB lets one process hold one data directory at a time)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spendstream.cli.common import reading
from spendstream.config import load_settings
from spendstream.sinks.access import DIRECT_CLIENTS, concurrency, read_at_once
from spendstream.sinks.client import connect
from tests.support.ledger_data import write_config
from tests.support.ledger_template import copy_template

pytestmark = pytest.mark.storage


def test_a_direct_read_runs_queries_at_once_and_closes_every_client(
    tmp_path: Path, migrated_template: Path
) -> None:
    path = copy_template(migrated_template, tmp_path / "clickhouse")
    settings = load_settings(write_config(tmp_path, path))
    with reading(settings) as reader:
        assert concurrency(reader) == DIRECT_CLIENTS > 1
        queries = [f"SELECT {n} AS n, count() FROM ledger" for n in range(DIRECT_CLIENTS + 2)]
        found = read_at_once(reader, [lambda sql=sql: reader.query(sql) for sql in queries])
    assert [result.rows for result in found] == [[[n, 0]] for n in range(DIRECT_CLIENTS + 2)]
    # Had any client of the read stayed open, this process could not open another directory.
    other = connect(f"chdb://{tmp_path / 'other'}")
    try:
        assert other.command("SELECT 1") == 1
    finally:
        other.close()
