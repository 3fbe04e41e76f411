"""``spendstream serve``: the same API standalone against a ClickHouse server (http:// DSN),
with a token created directly by ``spendstream tokens create``; the read-only, limited session
holds over the HTTP interface too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from spendstream.embedded import free_port
from tests.support.chdb_http import ChdbHttpServer
from tests.support.cli import spendstream
from tests.support.worker import wait_until

pytestmark = pytest.mark.integration


def test_serve_against_a_clickhouse_server(tmp_path: Path) -> None:
    with ChdbHttpServer(tmp_path / "clickhouse", port=free_port()) as server:
        config = tmp_path / "spendstream.toml"
        config.write_text(f'[clickhouse]\ndsn = "{server.dsn}"\n')
        # an empty server holds no ledger: only `migrate` (or a worker) creates one
        assert spendstream("migrate", "-c", str(config), cwd=tmp_path).returncode == 0
        created = spendstream(
            "tokens", "create", "--name", "ops", "--role", "admin", "-c", str(config), cwd=tmp_path
        )
        assert created.returncode == 0, created.stderr
        secret = created.stdout.strip()
        port = free_port()
        log = (tmp_path / "serve.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "spendstream", "serve", "--port", str(port), "-c", str(config)],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ},
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: _up(base), 60, "spendstream serve")
            auth = {"Authorization": f"Bearer {secret}"}
            assert httpx.get(f"{base}/api/v1/spend").status_code == 401
            spend = httpx.get(f"{base}/api/v1/spend", headers=auth)
            assert spend.status_code == 200 and spend.json()["rows"] == []
            assert spend.headers["x-content-type-options"] == "nosniff"
            rebound = httpx.get(f"{base}/api/v1/spend", headers={**auth, "Host": "evil.example"})
            assert rebound.status_code == 400 and "allowed_hosts" in rebound.json()["detail"]
            variance = httpx.get(f"{base}/api/v1/reconcile/variance", headers=auth)
            assert variance.status_code == 200, variance.text
            victim = tmp_path / "victim.pth"
            for query in (
                "SELECT * FROM file('/etc/hostname', 'LineAsString')",
                "SELECT file('/etc/hostname')",
                f"SELECT 'x' INTO OUTFILE '{victim}' TRUNCATE",
                "KILL QUERY WHERE 1",
                "SELECT 1 SETTINGS readonly = 0",
                "DROP TABLE ledger",
                "SELECT count() FROM numbers(10000000000)",
            ):
                refused = httpx.post(f"{base}/api/v1/sql", json={"query": query}, headers=auth)
                assert refused.status_code == 400, (query, refused.text)
            assert not victim.exists()
            typed = httpx.post(
                f"{base}/api/v1/sql", json={"query": "SELECT toIPv6('::1')"}, headers=auth
            )
            assert typed.json()["rows"] == [["::1"]]
            ok = httpx.post(f"{base}/api/v1/sql", json={"query": "SELECT timezone()"}, headers=auth)
            assert ok.json()["rows"] == [["UTC"]]
            setting = httpx.post(
                f"{base}/api/v1/sql", json={"query": "SELECT getSetting('readonly')"}, headers=auth
            )
            assert setting.status_code == 400
            assert setting.json()["detail"] == "refused: function getSetting is not allowed"
            # The dashboard is served too, its own routes over the same read-only server.
            page = httpx.get(f"{base}/budgets", cookies={"spendstream_session": secret})
            assert page.status_code == 200 and "/static/budgets.js" in page.text
            fresh = httpx.get(f"{base}/api/v1/freshness", headers=auth)
            assert fresh.json() == {"last_event": None, "last_ingested": None, "rows": 0}
            quotas = httpx.get(f"{base}/api/v1/quotas", headers=auth)  # none configured
            assert quotas.status_code == 200 and quotas.json()["quotas"] == [], quotas.text
        finally:
            process.terminate()
            process.wait(30)
            log.close()


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
