"""``report`` and ``sql`` through a running worker without Typer.

Typer 0.29 coerces every option through a pydantic ``TypeAdapter`` (with pydantic's import ~110
ms of CPU), and importing Typer itself (its vendored Click, ``gettext``) costs ~60 ms more: most
of such a command's start (BENCHMARKS.md, "CLI cold start"). When the command line is one of
the plain forms below and a worker answers for the configured directory, this module asks the
worker and prints its answer through the very functions the Typer commands call
(:mod:`spendstream.cli.reading`), without importing Typer. Anything else (help, an option or a
value outside these forms, no worker, a configuration only the full settings read) returns None
and the command runs through Typer as before, so every usage error, help text and exit code
stays Typer's. ``tests/test_cli_quick.py`` runs each form both ways and compares, and checks
that the defaults below are the commands' own.

The plain forms: ``--name value``, ``--name=value``, the short ``-b``/``-c``/``-f`` followed by
their value, ``--unpriced``, and for ``sql`` one query (``-`` reads stdin); each option at most
once but ``--by``; a value never starts with ``-``.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from spendstream.cli.errors import exit_code_for, message_for
from spendstream.cli.output import OutputFormat, emit, say
from spendstream.cli.reading import (
    QueryRefused,
    ReportAsked,
    print_worker_report,
    query_worker,
    read_moment,
    worker_or_none,
)

# option spelling -> (parameter, kind); kinds: "text", "texts" (repeatable), "int", "format",
# "flag".
SHARED = {"--config": ("config", "text"), "-c": ("config", "text")}
SHARED |= {"--format": ("output", "format"), "-f": ("output", "format")}
REPORT = {
    **SHARED,
    **{"--by": ("by", "texts"), "-b": ("by", "texts"), "--since": ("since", "text")},
    **{"--until": ("until", "text"), "--limit": ("limit", "int")},
    **{"--currency": ("currency", "text"), "--unpriced": ("unpriced", "flag")},
}
# The commands' defaults (spendstream.cli.data.report and sql; the test compares them).
SQL_DEFAULTS: dict[str, Any] = {"config": None, "output": OutputFormat.table}
REPORT_DEFAULTS: dict[str, Any] = {
    **SQL_DEFAULTS,
    **{"by": None, "since": "30d", "until": "now", "unpriced": False, "limit": 50},
    "currency": None,
}
PLAIN_INT = re.compile(r"0|[1-9][0-9]{0,17}")
FORMATS = {member.value: member for member in OutputFormat}


def run(argv: list[str]) -> int | None:
    """Run ``argv`` (without the program name) here and return its exit code, or None: run it
    through Typer."""
    if not argv or argv[0] not in ("report", "sql"):
        return None
    name, rest = argv[0], list(argv[1:])
    values = _report_values(rest) if name == "report" else _sql_values(rest)
    if values is None:
        return None
    reached = worker_or_none(values["config"])
    if reached is None:
        return None
    try:
        if name == "report":
            asked = ReportAsked(
                values["by"] or ["team"],
                values["since"],
                values["until"],
                values["unpriced"],
                values["limit"],
            )
            print_worker_report(reached, asked, values["currency"], values["output"])
        else:
            query = values["query"]
            text = sys.stdin.read() if query == "-" else query
            emit(query_worker(reached[0], text), values["output"])
    except QueryRefused as refused:
        say(refused.label, refused.detail)
        return 1
    except KeyboardInterrupt:
        return 130  # as Typer
    except BrokenPipeError:  # stdout's reader left: spendstream.cli.main ends quietly
        raise
    except Exception as exc:  # as ErrorMappingGroup.invoke
        say("error:", message_for(exc))
        return exit_code_for(exc)
    return 0


def _report_values(args: list[str]) -> dict[str, Any] | None:
    values = _options(args, REPORT, REPORT_DEFAULTS)
    if values is None or values.pop("_positional", None) is not None:
        return None
    try:  # a bad time is Typer's usage error to report
        values["since"] = read_moment(values["since"])
        values["until"] = read_moment(values["until"])
    except ValueError:
        return None
    return values


def _sql_values(args: list[str]) -> dict[str, Any] | None:
    values = _options(args, SHARED, SQL_DEFAULTS)
    if values is None or values.get("_positional") is None:
        return None
    values["query"] = values.pop("_positional")
    return values


def _options(
    args: list[str], spellings: dict[str, tuple[str, str]], defaults: dict[str, Any]
) -> dict[str, Any] | None:
    """The parameters of ``args`` as Typer passes them, or None outside the plain forms."""
    values = dict(defaults)
    given: set[str] = set()
    position = 0
    while position < len(args):
        token = args[position]
        position += 1
        if token == "-" or not token.startswith("-"):
            if "_positional" in values:
                return None
            values["_positional"] = token
            continue
        spelling, equals, attached = token.partition("=")
        if spelling not in spellings or (equals and not spelling.startswith("--")):
            return None
        parameter, kind = spellings[spelling]
        if kind != "texts" and parameter in given:
            return None
        given.add(parameter)
        if kind == "flag":
            if equals:
                return None
            values[parameter] = True
            continue
        if equals:
            value = attached
        elif position < len(args):
            value = args[position]
            position += 1
        else:
            return None
        if value.startswith("-"):
            return None
        shown = _value(kind, value, values.get(parameter))
        if shown is None:
            return None
        values[parameter] = shown
    return values


def _value(kind: str, text: str, before: Any) -> Any:
    """``text`` as Typer coerces it for ``kind``, or None when not a plain value."""
    if kind == "text":
        return text
    if kind == "texts":
        return [*(before or []), text]
    if kind == "int":
        return int(text) if PLAIN_INT.fullmatch(text) else None
    return FORMATS.get(text.lower()) if text.isascii() else None
