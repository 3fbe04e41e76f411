"""The ``runaway_run`` alert: a run beyond N x its agent's p95 cost or over K steps, found from
``agent_runs`` and enqueued once per run with its step breakdown (model or tool, tokens, cost),
text from events inert. On real chDB with the outbox, then end to end through a real worker
(the lease holder evaluates) to the HTTP Slack stand-in."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.alerts.runaway import RunawayRuns, agent_p95, find_runaways
from spendstream.config.agents import RunawaySettings
from spendstream.embedded import TansuBroker
from spendstream.events import UsageEvent
from spendstream.money import format_usd
from spendstream.notifications.outbox import Outbox
from spendstream.pricing import default_pricer
from spendstream.sinks.access import ClientReader
from tests.support.ledger_data import fill_ledger
from tests.support.slack_server import SlackServer
from tests.support.traffic import publish
from tests.support.worker import WorkerProcess, wait_until, write_config

pytestmark = pytest.mark.integration
HOSTILE_AGENT = "looper <!channel> *now*"
HOSTILE_TOOL = "[click](http://evil.example)"
SETTINGS = RunawaySettings(
    enabled=True, cost_multiple=Decimal(3), max_steps=30, min_runs=10, channels=["oncall"]
)


def steps(
    run: str, agent: str, count: int, model: str, tokens: int, now: datetime
) -> list[UsageEvent]:
    return [
        UsageEvent(
            provider="openai",
            model=model,
            input_tokens=tokens,
            output_tokens=tokens // 10,
            event_id=f"{run}-{n}",
            event_time=now - timedelta(minutes=5) + timedelta(seconds=n),
            run_id=run,
            agent=agent,
            step=n,
            tags={"team": "agents"},
        )
        for n in range(1, count + 1)
    ]


def planted(now: datetime) -> list[UsageEvent]:
    """30 ordinary runs of each agent, one costly run (with a hostile tool call) and one run of
    40 cheap steps."""
    events = []
    for agent in ("triage", HOSTILE_AGENT):
        for number in range(30):
            events += steps(f"{agent[:6]}-{number}", agent, 3, "gpt-4o-mini", 1_000, now)
    events += steps("costly-run", HOSTILE_AGENT, 4, "gpt-4o", 200_000, now)
    events.append(
        UsageEvent(
            provider="openai",
            model="gpt-4o",
            operation="other",
            tool=HOSTILE_TOOL,
            units={"web_search_calls": 2},
            event_id="costly-run-tool",
            event_time=now - timedelta(minutes=4),
            run_id="costly-run",
            agent=HOSTILE_AGENT,
            step=5,
            tags={"team": "agents"},
        )
    )
    return events + steps("long-run", "triage", 40, "gpt-4o-mini", 10, now)


def test_runaway_runs_are_found_and_alerted_once_with_their_breakdown(
    ledger_client: Client,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    events = planted(now)
    fill_ledger(ledger_client, events)
    pricer = default_pricer()
    ordinary = sum(pricer.rate(e).cost_total for e in events if e.run_id == "triage-0")
    p95 = agent_p95(ClientReader(ledger_client), SETTINGS, now + timedelta(minutes=1))
    assert p95 == {"triage": (ordinary, 31), HOSTILE_AGENT: (ordinary, 31)}
    found = {r.run_id: r for r in find_runaways(ClientReader(ledger_client), SETTINGS, now)}
    assert set(found) == {"costly-run", "long-run"}
    costly, long = found["costly-run"], found["long-run"]
    costly_cost = sum(pricer.rate(e).cost_total for e in events if e.run_id == "costly-run")
    assert (costly.cost, costly.cost_limit, costly.steps_over) == (
        costly_cost,
        ordinary * 3,
        False,
    )
    assert (long.steps, long.steps_over, long.cost_limit) == (40, True, None)

    outbox = Outbox(ledger_client)
    job = RunawayRuns(SETTINGS, outbox)
    assert job.run(now) is True
    assert job.run(now + timedelta(minutes=1)) is False  # once per run
    stored = {
        row[0]: row[1:]
        for row in ledger_client.query(
            "SELECT budget, kind, spend, limit_usd, body, title, channels FROM alerts FINAL"
        ).result_rows
    }
    assert set(stored) == {f"run/{HOSTILE_AGENT}/costly-run", "run/triage/long-run"}
    kind, spend, limit, body, title, channels = stored[f"run/{HOSTILE_AGENT}/costly-run"]
    assert (kind, spend, limit, channels) == ("runaway_run", costly_cost, ordinary * 3, ["oncall"])
    tool = next(e for e in events if e.event_id == "costly-run-tool")
    model_cost = costly_cost - pricer.rate(tool).cost_total
    assert f"- model gpt-4o: 4 steps, 800,000 in / 80,000 out tokens, {format_usd(model_cost)}" in (
        body
    )
    assert f"{format_usd(pricer.rate(tool).cost_total)}" in body and "- tool " in body
    assert "Costliest steps (top 5):" in body and "- step 3 at" in body
    for text in (body, title):  # text from events is inert
        assert "<!channel>" not in text and "http://evil" not in text and "*now*" not in text
    assert "more than 30" in stored["run/triage/long-run"][3]


# -- end to end: a real worker evaluating under the lease, Slack over HTTP ---------------------


@pytest.mark.heavy
def test_the_worker_sends_a_runaway_run_once_to_slack(
    tmp_path: Path,
    broker: TansuBroker,
    slack: SlackServer,
    start_worker: Callable[..., WorkerProcess],
    chdb_dsn: str,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    events = planted(now)
    config = write_config(
        tmp_path / "spendstream.toml",
        broker.bootstrap_servers,
        chdb_dsn,
        f"""
[alerts]
slack_webhook_base = "{slack.base_url}"
group_wait = "0.2s"
evaluate_every = "1s"

[alerts.delivery]
poll_every = "0.2s"

[alerts.channels]
oncall = "slack://T000/B000/XXXXXXXX"

[agents.runaway]
enabled = true
cost_multiple = "3"
max_steps = 30
min_runs = 10
channels = ["oncall"]
""",
    )
    worker = start_worker(config)
    publish(broker.bootstrap_servers, [e.to_json_bytes() for e in events])
    worker.wait_for_ledger_count(len(events))
    wait_until(
        lambda: (
            sum("costly-run" in t for t in slack.texts()) >= 1
            and sum("long-run" in t for t in slack.texts()) >= 1
        ),
        60,
        "the runaway messages",
    )
    time.sleep(4)  # several more evaluation passes: nothing is sent again
    texts = slack.texts()
    assert sum(t.count("Runaway run of agent") for t in texts) == 2
    everything = "\n".join(texts)
    assert "Why: cost" in everything and "By model or tool:" in everything
    assert "<!channel>" not in everything and "http://evil" not in everything
    assert worker.scalar("SELECT count() FROM alerts FINAL WHERE kind = 'runaway_run'") == 2
