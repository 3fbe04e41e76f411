"""The ``steps`` quota unit (``steps = 40`` with ``group_by = ["run_id"]``): configuration,
a run stopped in-process at its step limit (no broker: admission reads a snapshot), and the
decision from the ledger for a run whose steps were recorded by several processes (real chDB)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.config import ConfigError, Settings
from spendstream.decisions import QuotaExceeded
from spendstream.events import UsageEvent
from spendstream.producers.admission import AdmissionView
from spendstream.quotas.config import load_quotas
from spendstream.quotas.engine import QuotaEngine
from spendstream.quotas.store import QuotaStore
from tests.support.ledger_data import fill_ledger
from tests.support.quota_data import snapshot
from tests.test_producer_recorder import offline_recorder

RUN_STEPS = {
    "name": "run-steps",
    "scope": {"agent": "looper"},
    "group_by": ["run_id"],
    "steps": 5,
}


def test_steps_quota_config_and_errors() -> None:
    [quota] = load_quotas(Settings(quotas=[RUN_STEPS])).quotas
    spec = quota.spec()
    assert (quota.unit, quota.amount, spec.unit, spec.limit) == ("steps", 5, "steps", 5)
    with pytest.raises(ConfigError) as error:
        load_quotas(
            Settings(
                quotas=[
                    {"name": "a", "steps": 0},
                    {"name": "b", "steps": 5, "limit": "1"},
                    {"name": "c", "units": {"steps": 5}},
                ]
            )
        )
    text = str(error.value)
    assert "quotas[0].steps = 0" in text and "a positive whole number of recorded events" in text
    assert "quotas[1]: Value error, set exactly one of limit (USD), tokens, requests, steps" in text
    assert "quotas[2]: Value error, units = { steps = ... }: write steps = N instead" in text


def test_a_steps_quota_stops_a_run_at_its_limit_in_process(tmp_path: Path) -> None:
    """The worker never heard of the run: the process's own steps count."""
    recorder = offline_recorder(tmp_path)
    [quota] = load_quotas(Settings(quotas=[RUN_STEPS])).quotas
    view = AdmissionView(stale_after_s=60)
    view.apply(snapshot(specs=(quota.spec(),), published=datetime.now(UTC)))
    recorder._view = view  # the decisions feed would deliver this snapshot
    made = []
    for _ in range(2):  # per run: the second run starts from zero
        with recorder.run(agent="looper") as run:
            with pytest.raises(QuotaExceeded) as stopped:
                while True:
                    with recorder.guard("gpt-4o"):
                        recorder.record(provider="openai", model="gpt-4o", input_tokens=10)
            made.append(run.steps)
            decision = stopped.value.decision
            assert (decision.unit, decision.key) == ("steps", f"run_id={run.run_id}")
    assert made == [5, 5]  # exactly the limit: the sixth step is refused before it runs
    with recorder.run(agent="other"):  # outside the quota's scope
        assert recorder.admit("gpt-4o").allowed
    recorder.close()


def step(run: str, number: int, process: int) -> UsageEvent:
    return UsageEvent(
        provider="openai",
        model="gpt-4o",
        input_tokens=100 * number,
        event_id=f"{run}-{process}-{number}",
        event_time=datetime.now(UTC) - timedelta(seconds=30 - number),
        run_id=run,
        agent="looper",
        step=number,
        tags={"team": "agents"},
    )


def test_the_ledger_decides_a_run_spread_over_processes(ledger_client: Client) -> None:
    # Three processes each recorded steps of run-a; run-b stayed under its limit.
    events = [step("run-a", n, p) for p in range(3) for n in range(1, 3)]
    events += [step("run-b", n, 0) for n in range(1, 4)]
    rated = fill_ledger(ledger_client, events)
    fill_ledger(ledger_client, [e for e, _ in rated])  # redelivered: never counts twice
    engine = QuotaEngine(
        load_quotas(Settings(quotas=[RUN_STEPS])), QuotaStore(ledger_client), outbox=None
    )
    decided = {d.key: d for d in engine.decide(None)}
    run_a, run_b = decided["run_id=run-a"], decided["run_id=run-b"]
    assert (run_a.unit, run_a.used, run_a.allowed, run_a.over) == ("steps", 6, False, True)
    assert (run_b.used, run_b.remaining, run_b.allowed) == (3, 2, True)
    assert "6 steps of 5 steps used" in run_a.reason
    assert run_a.limit == Decimal(5)
