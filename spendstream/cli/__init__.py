"""The ``spendstream`` command line.

The commands, their table and the Typer root live in :mod:`spendstream.cli.root`. This module
only starts them: ``report`` and ``sql`` in their plain forms, while a worker answers, run
through :mod:`spendstream.cli.quick` without importing Typer at all (~60 ms of a ~170 ms
start, BENCHMARKS.md "CLI cold start"); everything else, and anything the quick path leaves,
goes through Typer.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

# The exit code of a command whose stdout reader left, as a shell reports a process SIGPIPE
# ended (128 + 13): ``spendstream report | head`` under ``set -o pipefail`` acts as ``yes | head``.
BROKEN_PIPE_EXIT = 141


def main() -> None:
    try:
        if sys.argv[1:2] in (["report"], ["sql"]):  # through a worker: without Typer at all
            from spendstream.cli.quick import run

            code = run(sys.argv[1:])
            if code is not None:
                raise SystemExit(code)
        from spendstream.cli.root import app

        app()
    except BrokenPipeError:
        end_on_broken_pipe()


def end_on_broken_pipe() -> NoReturn:
    """stdout's reader left (``| head``): end quietly, every command alike. stdout then points
    at /dev/null, so the interpreter's last flush of what is buffered cannot raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(BROKEN_PIPE_EXIT)
