"""`spendstream send`: JSON lines through the SDK, bad lines reported by number."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from spendstream.events import UsageEvent
from tests.support.cli import spendstream
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration


def test_send_reports_bad_lines_and_delivers_the_rest(
    tmp_path: Path, worker_config: Path, start_worker: Callable[..., WorkerProcess]
) -> None:
    good = [
        UsageEvent(provider="openai", model="gpt-4o-mini", input_tokens=n + 1, tags={"team": "a"})
        for n in range(3)
    ]
    lines = [
        good[0].model_dump_json(),
        '{"provider": "openai", "model": "gpt-4o", "input_tokens": -1}',
        "",
        good[1].model_dump_json(),
        "not json",
        good[2].model_dump_json(),
    ]
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(lines) + "\n")
    worker = start_worker()
    result = spendstream("send", str(source), "--config", str(worker_config), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "accepted 3, rejected 2" in result.stdout
    assert "line 2: input_tokens: Input should be greater than or equal to 0" in result.stderr
    assert "line 5: payload: not valid JSON" in result.stderr
    worker.wait_for_ledger_count(3)
    ids = {row[0] for row in worker.query("SELECT event_id FROM ledger FINAL").rows}
    assert ids == {event.event_id for event in good}


def test_unknown_model_is_stored_unpriced_and_listed_by_report(
    tmp_path: Path, worker_config: Path, start_worker: Callable[..., WorkerProcess]
) -> None:
    known = UsageEvent(provider="openai", model="gpt-4o", input_tokens=1000, output_tokens=10)
    unknown = UsageEvent(provider="openai", model="gpt-7-turbo", input_tokens=1000)
    source = tmp_path / "events.jsonl"
    source.write_text(f"{known.model_dump_json()}\n{unknown.model_dump_json()}\n")
    worker = start_worker()
    sent = spendstream("send", str(source), "--config", str(worker_config), cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr
    worker.wait_for_ledger_count(2)
    row = worker.query(
        "SELECT priced, cost_total, unpriced_reason FROM ledger FINAL WHERE model = 'gpt-7-turbo'"
    ).rows[0]
    assert row[0] is False and Decimal(row[1]) == 0
    assert "unknown model 'gpt-7-turbo'" in row[2]
    report = spendstream(
        "report", "--unpriced", "--since", "1d", "--config", str(worker_config), cwd=tmp_path
    )
    assert report.returncode == 0, report.stderr
    assert "gpt-7-turbo" in report.stdout and "gpt-4o " not in report.stdout
