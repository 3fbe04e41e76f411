"""The CLI's one mapping from errors to exit codes (documented in docs/cli.md).

| code | meaning                                                                      |
|------|------------------------------------------------------------------------------|
| 0    | done                                                                         |
| 1    | the command ran and failed: a figure check failed, the API refused the       |
|      | request (4xx), a provider refused, a query of ours was refused               |
| 2    | usage: the command line, the configuration or an input file is wrong         |
| 3    | unavailable: ClickHouse, the broker or the worker's API cannot be reached now;|
|      | nothing was changed, run the command again later                             |
| 4    | a bug (here or in the worker's API): the error id and traceback are logged    |

Commands raise :mod:`spendstream.errors` types and let them escape; the root command's class
(:class:`spendstream.cli.root.ErrorMappingGroup`) prints ``error: <message>`` on stderr and
exits with the code of the class. Click's own usage errors keep their code (2). Nothing here
imports Typer: the quick path (:mod:`spendstream.cli.quick`) maps errors the same way.
"""

from __future__ import annotations

import logging
import uuid

from spendstream.errors import InputError, SpendstreamError, UnavailableError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_BUG = 4


def exit_code_for(exc: BaseException) -> int:
    """The exit code of ``exc`` by its class (the most specific rule first)."""
    # Imported here, as below: `spendstream --help` loads this module and needs none of them.
    from spendstream.sinks.access import ApiError, ApiServerError

    if isinstance(exc, UnavailableError):
        return EXIT_UNAVAILABLE
    if isinstance(exc, ApiServerError):
        return EXIT_BUG
    if isinstance(exc, ApiError):  # refused by the API (4xx): exit 1, as before this table
        return EXIT_FAILED
    if isinstance(exc, InputError):
        return EXIT_USAGE
    if isinstance(exc, SpendstreamError):
        return EXIT_FAILED
    return EXIT_BUG


def message_for(exc: BaseException) -> str:
    """What to print after ``error:``; a bug's traceback is logged with a fresh error id."""
    if isinstance(exc, UnavailableError):
        return f"{exc} (unavailable: nothing was changed; retry in {exc.retry_after_s:.0f} s)"
    from spendstream.logs import CurrentStderrHandler, configure_logging, get_logger

    if isinstance(exc, SpendstreamError):
        return str(exc)
    log = get_logger(__name__)
    error_id = uuid.uuid4().hex
    if not any(isinstance(h, CurrentStderrHandler) for h in logging.getLogger().handlers):
        configure_logging("warning")  # failed before settings were loaded: log to stderr
    log.error("unexpected error", error_id=error_id, error_type=type(exc).__name__, exc_info=exc)
    return f"internal error {type(exc).__name__}: {exc} (a bug; error id {error_id} in the log)"
