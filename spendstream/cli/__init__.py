"""The ``spendstream`` command line.

The commands, their table and the Typer root live in :mod:`spendstream.cli.root`. This module
only starts them: ``report`` and ``sql`` in their plain forms, while a worker answers, run
through :mod:`spendstream.cli.quick` without importing Typer at all (~60 ms of a ~170 ms
start, BENCHMARKS.md "CLI cold start"); everything else, and anything the quick path leaves,
goes through Typer.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] in (["report"], ["sql"]):  # through a worker: without Typer at all
        from spendstream.cli.quick import run

        code = run(sys.argv[1:])
        if code is not None:
            raise SystemExit(code)
    from spendstream.cli.root import app

    app()
