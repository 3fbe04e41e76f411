"""``recorder.run()``: ids and steps stamped on every record(), admit() and outcome() inside the
block, carried across asyncio tasks, threads (through a copied context) and os.fork; ``run.cost``
is the in-process running total; a run quota (group_by = ["run_id"]) stops a looping agent within
one step from the run's own total (no broker: the recorder spools, admission reads a snapshot)."""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from spendstream.decisions import QuotaExceeded, QuotaSpec
from spendstream.events import OutcomeEvent, UsageEvent
from spendstream.pricing import default_pricer
from spendstream.producers import Recorder
from spendstream.producers.admission import AdmissionView
from spendstream.producers.runs import current_run
from spendstream.producers.spool import Spool
from tests.support.quota_data import snapshot
from tests.test_producer_recorder import offline_recorder, spooled_events


def call(recorder: Recorder, tokens: int = 1_000) -> str | None:
    return recorder.record(
        provider="openai", model="gpt-4o", input_tokens=tokens, output_tokens=tokens // 10
    )


def test_run_stamps_ids_and_steps_and_totals_its_cost(tmp_path: Path) -> None:
    recorder = offline_recorder(tmp_path)
    with recorder.run(agent="triage", customer="acme", session_id="conv-1") as run:
        for tokens in (1_000, 2_000, 3_000):
            call(recorder, tokens)
        recorder.record(
            provider="openai",
            model="gpt-4o",
            tool="web_search",
            units={"web_search_calls": 1},
        )
        with recorder.run(agent="researcher") as sub:
            call(recorder, 500)
        assert current_run() is run
    assert current_run() is None
    call(recorder)  # outside: no run
    recorder.close()
    events = spooled_events(tmp_path / "spool")
    in_run = [e for e in events if e.run_id == run.run_id]
    assert [e.step for e in in_run] == [1, 2, 3, 4]
    assert {(e.agent, e.customer, e.session_id) for e in in_run} == {("triage", "acme", "conv-1")}
    assert in_run[3].tool == "web_search"
    pricer = default_pricer()
    assert run.cost == sum(pricer.rate(e).cost_total for e in in_run) > 0
    assert (run.steps, run.tokens) == (4, 6_600)
    [nested] = [e for e in events if e.run_id == sub.run_id]
    # A sub-run: its own id, the caller as parent, the customer and session inherited.
    assert (nested.agent, nested.parent, nested.customer, nested.session_id, nested.step) == (
        "researcher",
        run.run_id,
        "acme",
        "conv-1",
        1,
    )
    assert sub.cost == pricer.rate(nested).cost_total
    [outside] = [e for e in events if e.run_id is None]
    assert (outside.agent, outside.step, outside.customer) == (None, None, None)


def test_a_ready_event_gets_the_run_ids_but_keeps_its_own(tmp_path: Path) -> None:
    recorder = offline_recorder(tmp_path)
    with recorder.run(agent="triage", run_id="run-7") as run:
        recorder.record(UsageEvent(provider="openai", model="gpt-4o", input_tokens=5))
        recorder.record(UsageEvent(provider="openai", model="gpt-4o", step=9, customer="beta"))
    recorder.close()
    first, second = spooled_events(tmp_path / "spool")
    assert (first.run_id, first.agent, first.step) == ("run-7", "triage", 1)
    assert (second.run_id, second.step, second.customer) == ("run-7", 9, "beta")
    assert run.steps == 1  # the event numbered itself


def test_invalid_ids_fail_at_once(tmp_path: Path) -> None:
    recorder = offline_recorder(tmp_path)
    with pytest.raises(ValidationError), recorder.run(run_id="has space"):
        pass
    with pytest.raises(ValidationError), recorder.run(agent="x" * 201):
        pass
    recorder.close()


def test_ids_follow_asyncio_tasks(tmp_path: Path) -> None:
    recorder = offline_recorder(tmp_path)

    async def agent() -> str:
        with recorder.run(agent="planner", customer="acme") as run:

            async def tool_call(tokens: int) -> None:
                await asyncio.sleep(0)
                call(recorder, tokens)

            await asyncio.gather(*(tool_call(100 * n) for n in range(1, 21)))
            return run.run_id

    run_id = asyncio.run(agent())
    recorder.close()
    events = spooled_events(tmp_path / "spool")
    assert len(events) == 20 and {e.run_id for e in events} == {run_id}
    assert sorted(e.step or 0 for e in events) == list(range(1, 21))


def test_ids_follow_threads_started_with_a_copied_context(tmp_path: Path) -> None:
    recorder = offline_recorder(tmp_path)
    seen_plain: list[object] = []
    with recorder.run(agent="fanout") as run:
        workers = [
            threading.Thread(target=contextvars.copy_context().run, args=(call, recorder, 100 * n))
            for n in range(1, 9)
        ]
        attached = threading.Thread(target=lambda: _attached(recorder, run))
        # A plain thread starts with an empty context (CPython 3.11-3.13): no run there.
        plain = threading.Thread(target=lambda: seen_plain.append(current_run()))
        for thread in (*workers, attached, plain):
            thread.start()
        for thread in (*workers, attached, plain):
            thread.join()
    recorder.close()
    events = spooled_events(tmp_path / "spool")
    assert len(events) == 9 and {e.run_id for e in events} == {run.run_id}
    assert sorted(e.step or 0 for e in events) == list(range(1, 10))  # no step twice
    assert seen_plain == [None]
    assert run.cost == sum(default_pricer().rate(e).cost_total for e in events)


def _attached(recorder: Recorder, run: object) -> None:
    assert hasattr(run, "attach")
    with run.attach():
        call(recorder, 50)


def test_a_forked_child_continues_the_run(tmp_path: Path) -> None:
    recorder = offline_recorder(tmp_path)
    report = tmp_path / "child.json"
    with recorder.run(agent="forker", customer="acme") as run:
        call(recorder)
        cost_at_fork = run.cost
        pid = os.fork()
        if pid == 0:  # the child: record in the inherited run, report what it spooled
            status = 1
            try:
                call(recorder)
                child_run = current_run()
                slot = recorder.stats().spool_dir
                recorder.close()
                spool = Spool(Path(slot), max_bytes=1 << 30)
                events = [json.loads(r.value) for r in spool.read(100)]
                report.write_text(
                    json.dumps(
                        {
                            "events": events,
                            "steps": child_run.steps if child_run else -1,
                            "cost": str(child_run.cost) if child_run else "",
                        }
                    )
                )
                status = 0
            finally:
                os._exit(status)
        _, code = os.waitpid(pid, 0)
        call(recorder)
    assert os.waitstatus_to_exitcode(code) == 0
    child = json.loads(report.read_text())
    [event] = child["events"]
    assert (event["run_id"], event["agent"], event["customer"], event["step"]) == (
        run.run_id,
        "forker",
        "acme",
        2,
    )
    one_call = default_pricer().rate(UsageEvent.model_validate(event)).cost_total
    assert Decimal(child["cost"]) == cost_at_fork + one_call and child["steps"] == 2
    assert run.steps == 2  # the parent's own counter: its second call is its step 2
    recorder.close()


def test_outcomes_carry_the_run_ids(tmp_path: Path) -> None:
    recorder = offline_recorder(tmp_path)
    with recorder.run(agent="triage", customer="acme") as run:
        recorder.outcome("ticket_resolved", team="support")
    recorder.close()
    spool = Spool(Path(str(tmp_path / "spool") + "-outcomes"), max_bytes=1 << 30)
    [outcome] = [OutcomeEvent.model_validate_json(r.value) for r in spool.read(10)]
    spool.close()
    assert outcome.tags == {
        "team": "support",
        "run_id": run.run_id,
        "agent": "triage",
        "customer": "acme",
    }


RUN_QUOTA = QuotaSpec(
    name="run-dollars",
    scope={"agent": ("looper",)},
    group_by=("run_id",),
    unit="usd",
    limit=Decimal("0.05"),
    per="day",
)


def test_a_run_quota_stops_a_looping_agent_within_one_step(tmp_path: Path) -> None:
    """Answered from the run's own total in this process: the worker never heard of the run."""
    recorder = offline_recorder(tmp_path)
    view = AdmissionView(stale_after_s=60, cost_of=lambda e: default_pricer().rate(e).cost_total)
    view.apply(snapshot(specs=(RUN_QUOTA,), published=datetime.now(UTC)))
    recorder._view = view  # the decisions feed would deliver this snapshot
    steps_per_run = []
    for _ in range(2):  # a second run starts from zero: the quota is per run
        with recorder.run(agent="looper") as run:
            with pytest.raises(QuotaExceeded) as stopped:
                while True:
                    with recorder.guard("gpt-4o"):
                        call(recorder, 2_000)  # $0.007 a step
            steps_per_run.append(run.steps)
            assert stopped.value.decision.key == f"run_id={run.run_id}"
            # Stopped at the first step that finds the run at or past its limit.
            assert Decimal("0.05") <= run.cost < Decimal("0.05") + Decimal("0.007")
    with recorder.run(agent="other"):  # outside the quota's scope
        assert recorder.admit("gpt-4o").allowed
    assert steps_per_run == [8, 8]
    recorder.close()
