"""``GET /spend`` says when its answer is cut at ``limit`` rows (``truncated``), so a chart or a
total over a long, fine-grained period never silently misses spend (real chDB, real HTTP)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from clickhouse_connect.driver.client import Client

from spendstream.api.common import ApiDeps
from spendstream.api.routes_data import data_router
from spendstream.auth.roles import Principal, Role
from spendstream.sinks.access import ClientReader
from tests.support import ledger_data
from tests.support.http_app import ServedApp, TokenAuthenticator

pytestmark = pytest.mark.integration
START = ledger_data.START


def test_a_cut_answer_says_it_is_truncated(ledger_client: Client) -> None:
    ledger_data.fill_ledger(ledger_client, ledger_data.generate(300, seed=3))
    deps = cast(ApiDeps, SimpleNamespace(reader=ClientReader(ledger_client)))
    tokens = {"view": Principal("dash", Role.VIEWER)}
    window = {
        "since": START.isoformat(),
        "until": (START + timedelta(days=ledger_data.DAYS)).isoformat(),
    }
    with ServedApp(TokenAuthenticator(tokens), data_router(deps)) as app:

        def get(**params: Any) -> dict[str, Any]:
            answer = httpx.get(
                app.url + "/spend",
                params={**window, **params},
                headers={"Authorization": "Bearer view"},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            return cast(dict[str, Any], answer.json())

        whole = get(by="team", granularity="minute", limit=10_000)
        assert whole["truncated"] is False and len(whole["rows"]) > 100
        cut = get(by="team", granularity="minute", limit=100)
        assert cut["truncated"] is True and cut["limit"] == 100 and len(cut["rows"]) == 100
        exact = get(by="team", granularity="minute", limit=len(whole["rows"]))
        assert exact["truncated"] is False and exact["rows"] == whole["rows"]
        total = sum(Decimal(str(row[2])) for row in whole["rows"])
        [[ledger_total]] = ledger_client.query(
            "SELECT sum(cost_total) FROM ledger FINAL"
        ).result_rows
        assert total == ledger_total
