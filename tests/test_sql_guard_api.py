"""Issue 24's exploits of free SQL through the real API of a running worker (chDB in the
worker's process), refused with a 400 naming what; real analytics still answered with the
figures the published events give; every ClickHouse type serialised (no 500); and
``spendstream sql`` showing a refusal cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.api_env import ApiEnv, start_env, team_events
from tests.support.cli import spendstream
from tests.support.sql_corpus import HOSTILE

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, migrated_template: Path) -> Iterator[ApiEnv]:
    yield from start_env(tmp_path_factory.mktemp("sqlguard"), migrated_template)


def sql(env: ApiEnv, query: str, parameters: dict[str, object] | None = None) -> tuple[int, dict]:
    answer = env.call(
        "POST",
        "/sql",
        token=env.tokens["admin"],
        json={"query": query, "parameters": parameters or {}},
    )
    return answer.status_code, answer.json()


def test_the_exploits_of_the_issue_are_refused(env: ApiEnv, tmp_path: Path) -> None:
    token_file = env.worker.token_file
    secret = token_file.read_text().strip()
    victim = tmp_path / "victim.pth"
    victim.write_text("original")
    created = tmp_path / "created.pth"
    exploits = {
        "SELECT file('/etc/passwd')": "function file is not allowed",
        f"SELECT file('{token_file}')": "function file is not allowed",
        "SELECT file('/proc/self/environ')": "function file is not allowed",
        f"SELECT CAST(file('{token_file}') AS Int64)": "function file is not allowed",
        "SELECT * FROM '/etc/passwd'": "table /etc/passwd is not allowed",
        f"SELECT 'import os' INTO OUTFILE '{victim}' TRUNCATE": "INTO OUTFILE is not allowed",
        f"SELECT 'import os' INTO OUTFILE '{created}'": "INTO OUTFILE is not allowed",
        "KILL QUERY WHERE 1": "KILL statements are not allowed",
        "KILL QUERY WHERE query LIKE '%INSERT%' SYNC": "KILL statements are not allowed",
    }
    for query, named in exploits.items():
        status, body = sql(env, query)
        assert status == 400, (query, body)
        assert body["detail"] == f"refused: {named}" or named in body["detail"], body
        assert secret not in str(body) and "root:" not in str(body)
    assert victim.read_text() == "original"
    assert not created.exists()
    # The worker still consumes (no query of it was killed).
    env.publish(team_events("alpha", 3, start=500))
    env.worker.wait_for_ledger_count(env.published)


def test_a_sample_of_the_hostile_corpus_is_refused(env: ApiEnv) -> None:
    for query, named in HOSTILE[::7]:
        status, body = sql(env, query)
        assert status == 400 and named in body["detail"], (query, body)


def test_analytics_are_answered_with_the_events_figures(env: ApiEnv) -> None:
    events = [e for e in team_events("alpha", 30) + team_events("beta", 20)]
    tokens = {
        team: sum(e.input_tokens for e in events if e.tags["team"] == team)
        for team in ("alpha", "beta")
    }
    status, body = sql(
        env,
        "WITH per_team AS (SELECT team, sum(input_tokens) AS tokens FROM ledger FINAL "
        "WHERE event_id NOT LIKE '%-5__' GROUP BY team) "
        "SELECT l.team, count(), any(p.tokens), quantileExact(0)(l.input_tokens) "
        "FROM ledger AS l FINAL INNER JOIN per_team AS p ON l.team = p.team "
        "WHERE l.team IN (SELECT team FROM ledger WHERE model LIKE 'gpt%') "
        "AND l.event_id NOT LIKE '%-5__' GROUP BY l.team ORDER BY l.team",
    )
    assert status == 200, body
    assert body["rows"] == [
        ["alpha", 30, tokens["alpha"], 1000],
        ["beta", 20, tokens["beta"], 1000],
    ]
    status, body = sql(
        env,
        "SELECT event_id, sum(input_tokens) OVER (PARTITION BY team ORDER BY input_tokens "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running, "
        "arrayMap(x -> x * 2, [input_tokens]) AS doubled FROM ledger "
        "WHERE team = {team:String} AND event_id NOT LIKE '%-5__' ORDER BY input_tokens",
        {"team": "beta"},
    )
    assert status == 200, body
    assert body["rows"][-1] == ["beta-19", tokens["beta"], [2 * 1019]]


def test_every_clickhouse_type_is_serialised(env: ApiEnv) -> None:
    status, body = sql(
        env,
        "SELECT toIPv6('::1') AS v6, toIPv4('10.0.0.1') AS v4, "
        "toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0') AS id, map('a', 1) AS m, "
        "map(toIPv4('1.1.1.1'), [toIPv6('::2')]) AS nested, (1, 'x') AS t, "
        "toDate32('2020-01-01') AS d32, CAST('a' AS Enum8('a' = 1)) AS e, nan AS n, -inf AS i, "
        "toTime('12:00:00') AS tm, toDecimal128(1.50, 2) AS dec, toInt256(-5) AS big, "
        "CAST(NULL AS Nullable(Int8)) AS nothing, toFixedString('ab', 2) AS fixed, "
        "toDateTime64('2020-01-01 00:00:00.5', 3) AS dt, '{\"a\": 1}'::JSON AS j, "
        "CAST((1, 2) AS Point) AS p",
    )
    assert status == 200, body
    assert body["rows"] == [
        [
            "::1",
            "10.0.0.1",
            "61f0c404-5cb3-11e7-907b-a6006ad3dba0",
            {"a": 1},
            {"1.1.1.1": ["::2"]},
            [1, "x"],
            "2020-01-01",
            "a",
            "nan",
            "-inf",
            "12:00:00",
            "1.5",
            -5,
            None,
            "ab",
            "2020-01-01T00:00:00.500000",
            {"a": 1},
            [1.0, 2.0],
        ]
    ]


def test_the_cli_shows_a_refusal_cleanly(env: ApiEnv) -> None:
    config = env.worker.config
    refused = spendstream("sql", "SELECT file('/etc/passwd')", "-c", str(config), cwd=config.parent)
    assert refused.returncode != 0
    output = refused.stdout + refused.stderr
    assert "function file is not allowed" in output and "HTTP 400" in output, output
    assert "Traceback" not in output and "root:" not in output
    answered = spendstream(
        "sql", "SELECT count() FROM ledger FINAL", "-c", str(config), cwd=config.parent
    )
    assert answered.returncode == 0, answered.stderr
    assert str(env.published) in answered.stdout
