"""Price versions stay unique and increasing while workers start and a reprice runs at once,
each through its own connection to one ClickHouse (chDB serving HTTP)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.pricing import Pricer, default_pricer
from spendstream.pricing.catalog import load_catalog
from spendstream.pricing.overrides import Override
from spendstream.sinks.client import connect
from spendstream.sinks.price_versions import next_price_version, register_price_version
from spendstream.sinks.rerating import reprice
from tests.support import ledger_data
from tests.support.chdb_http import ChdbHttpServer

pytestmark = pytest.mark.integration

CUT = Override(
    name="cut",
    provider="openai",
    model="gpt-4o-mini",
    input=Decimal("0.10"),
    output=Decimal("0.40"),
)


def test_workers_starting_during_a_reprice_get_distinct_versions(
    clickhouse_server: ChdbHttpServer,
) -> None:
    setup = connect(clickhouse_server.dsn, "spendstream")
    events = ledger_data.generate(2_000)
    ledger_data.fill_ledger(setup, events)  # version 1
    cut = Pricer(load_catalog(), overrides=[CUT])
    starts = ledger_data.START, ledger_data.START + timedelta(days=ledger_data.DAYS)
    got: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    gate = threading.Barrier(7)

    def run(name: str, allocate: Callable[[Client], list[int]]) -> None:
        client = connect(clickhouse_server.dsn, "spendstream")
        gate.wait()
        try:
            got[name] = allocate(client)
        except BaseException as exc:  # reported below
            errors.append(exc)

    def worker_start(digest: str) -> Callable[[Client], list[int]]:
        return lambda client: [register_price_version(client, digest)]

    def repricer(client: Client) -> list[int]:
        version = reprice(client, cut, *starts).version
        assert version is not None
        return [version]

    def allocator(client: Client) -> list[int]:
        return [next_price_version(client, "stream", f"burst-{i}") for i in range(5)]

    jobs: dict[str, Callable[[Client], list[int]]] = {
        "reprice": repricer,
        **{f"worker-{i}": worker_start(f"catalog-{i}") for i in range(4)},
        **{f"burst-{i}": allocator for i in range(2)},
    }
    threads = [threading.Thread(target=run, args=item) for item in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    versions = [v for name in sorted(got) for v in got[name]]
    assert len(versions) == 1 + 4 + 10
    # Unique, and together exactly the numbers after the first (nothing skipped or reused).
    assert sorted(versions) == list(range(2, 2 + len(versions)))
    for name in ("burst-0", "burst-1"):
        assert got[name] == sorted(got[name])  # increasing within a process
    rows = setup.query("SELECT version, count() FROM price_versions GROUP BY version").result_rows
    assert sorted(v for v, _ in rows) == list(range(1, 2 + len(versions)))
    assert all(n == 1 for _, n in rows)
    # The reprice's rows carry its own version, and the worker starts reuse nothing.
    rerated = setup.query(
        "SELECT DISTINCT price_version FROM ledger FINAL WHERE model = 'gpt-4o-mini'"
    ).result_rows
    assert rerated == [(got["reprice"][0],)]
    assert register_price_version(setup, "catalog-2") == got["worker-2"][0]
    assert default_pricer().catalog_digest != "catalog-2"
