"""``report`` and ``sql`` through a running worker without Typer's option parsing.

Typer 0.29 coerces every option through a pydantic ``TypeAdapter``: with pydantic's import that
is ~110 ms of CPU, a third of such a command (BENCHMARKS.md, "CLI cold start"). When the command
line is one of the plain forms below and a worker answers for the configured directory, the
command's own function is called with the values Typer would pass it. Anything else (help, an
option or a value outside these forms, no worker, a configuration only the full settings read)
returns None and the command runs through Typer as before, so every usage error, help text and
exit code stays Typer's. ``tests/test_cli_quick.py`` runs each form both ways and compares.

The plain forms: ``--name value``, ``--name=value``, the short ``-b``/``-c``/``-f`` followed by
their value, ``--unpriced``, and for ``sql`` one query (``-`` reads stdin); each option at most
once but ``--by``; a value never starts with ``-``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any

import typer

from spendstream.cli.common import OutputFormat, parse_moment, worker_or_none

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
PLAIN_INT = re.compile(r"0|[1-9][0-9]{0,17}")
FORMATS = {member.value: member for member in OutputFormat}


def run(argv: Sequence[str]) -> int | None:
    """Run ``argv`` (without the program name) here and return its exit code, or None: run it
    through Typer."""
    if not argv or argv[0] not in ("report", "sql"):
        return None
    from spendstream.cli import data

    name, rest = argv[0], list(argv[1:])
    command: Callable[..., None] = data.report if name == "report" else data.sql
    defaults = _defaults(command)
    values = _report_values(rest, defaults) if name == "report" else _sql_values(rest, defaults)
    if values is None or worker_or_none(values["config"]) is None:
        return None
    return _invoke(command, values)


def _defaults(command: Callable[..., None]) -> dict[str, Any]:
    """The command's options' defaults, from its own signature (so they cannot drift)."""
    parameters = inspect.signature(command).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def _invoke(command: Callable[..., None], values: dict[str, Any]) -> int:
    """``command(**values)`` with the exit codes Typer and the root group give it."""
    from spendstream.cli.common import fail
    from spendstream.cli.errors import exit_code_for, message_for

    try:
        try:
            command(**values)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except typer.BadParameter as exc:  # only if the worker left between the checks
            exc.show()
            return exc.exit_code
        except Exception as exc:  # as ErrorMappingGroup.invoke
            fail(message_for(exc), exit_code_for(exc))
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("Aborted!", err=True)
        return 1
    except KeyboardInterrupt:
        return 130  # as Typer
    return 0


def _report_values(args: list[str], defaults: dict[str, Any]) -> dict[str, Any] | None:
    values = _options(args, REPORT, defaults)
    if values is None or values.pop("_positional", None) is not None:
        return None
    try:  # a bad time is Typer's usage error to report
        parse_moment(values["since"])
        parse_moment(values["until"])
    except typer.BadParameter:
        return None
    return values


def _sql_values(args: list[str], defaults: dict[str, Any]) -> dict[str, Any] | None:
    values = _options(args, SHARED, defaults)
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
