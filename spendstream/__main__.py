"""The ``spendstream`` command (and ``python -m spendstream``).

The command line belongs to the ``worker`` extra: ``pip install spendstream`` is the SDK alone
(kafka-python and pydantic), so without the extra this prints how to install it instead of a
traceback, as ``httpx`` does for its own CLI.
"""

from __future__ import annotations

import sys

INSTALL_HINT = (
    "The spendstream command line needs the worker extra (missing module: {module}).\n"
    "Install it with:\n\n    pip install 'spendstream[worker]'\n\n"
    "or 'spendstream[all]' for the embedded broker and chDB too (spendstream dev).\n"
)


def main() -> None:
    """Run the CLI, or print the install hint and exit 2 when the worker extra is missing.

    The command line imports Typer (and a command its module) only once it runs
    (``spendstream.cli``), so a missing extra surfaces from the call, not from the import."""
    from spendstream.cli import main as cli_main  # the standard library only

    try:
        cli_main()
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing.split(".")[0] == "spendstream":
            raise  # our own bug, not a missing extra
        sys.stderr.write(INSTALL_HINT.format(module=missing))
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
