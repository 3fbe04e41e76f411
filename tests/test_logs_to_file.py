"""With a log file (``spendstream dev``), library logs and Python warnings go to the file and
nothing reaches the terminal's stderr."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from spendstream.logs import configure_logging


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    logging.captureWarnings(False)
    root.handlers[:], root.level = handlers, level


@pytest.mark.usefixtures("restored_logging")
def test_library_warnings_go_to_the_log_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "dev.log"
    configure_logging("info", "json", (), log_file)
    logging.getLogger("kafka.client").warning("Task ran for 0.181s, blocking the event loop")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a library's RuntimeWarning", RuntimeWarning, stacklevel=1)
    for handler in logging.getLogger().handlers:
        handler.flush()
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    events = [json.loads(line)["event"] for line in log_file.read_text().splitlines()]
    assert events[0] == "Task ran for 0.181s, blocking the event loop"
    assert "a library's RuntimeWarning" in events[1]
