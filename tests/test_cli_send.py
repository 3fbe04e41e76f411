"""`spendstream send`: JSON lines through the SDK, bad lines reported by number."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from spendstream.events import UsageEvent
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
    result = subprocess.run(
        [sys.executable, "-m", "spendstream", "send", str(source), "--config", str(worker_config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert result.returncode == 1, result.stderr
    assert "accepted 3, rejected 2" in result.stdout
    assert "line 2: input_tokens: Input should be greater than or equal to 0" in result.stderr
    assert "line 5: payload: not valid JSON" in result.stderr
    worker.wait_for_ledger_count(3)
    ids = {row[0] for row in worker.query("SELECT event_id FROM ledger FINAL").rows}
    assert ids == {event.event_id for event in good}
