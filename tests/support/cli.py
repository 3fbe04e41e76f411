"""Running the real ``spendstream`` command line: in a subprocess, or in this process."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from pathlib import Path


def spendstream(
    *args: str, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m spendstream ARGS`` in ``cwd`` (``env`` added to the environment); output
    captured as text, wide terminal."""
    return subprocess.run(
        [sys.executable, "-m", "spendstream", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "300", **(env or {})},
    )


def spendstream_here(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The same command run in this process by Typer's ``CliRunner``, answered as
    :func:`spendstream` answers: for tests of what a command computes, prints and exits with,
    not of the process (a new interpreter costs ~1.3 CPU-s before the command runs). The
    command's logging set-up is undone after it; an unexpected exception is raised, with its
    traceback, rather than read as exit code 1. Only ``report`` and ``sql`` through a worker
    take another path in a process of their own (``spendstream.cli.quick``)."""
    from typer.testing import CliRunner

    from spendstream.cli.root import app

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        with contextlib.chdir(cwd):
            result = CliRunner().invoke(app, list(args), env={"COLUMNS": "300", **(env or {})})
    finally:
        root.handlers[:], root.level = handlers, level
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)
