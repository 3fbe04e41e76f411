"""The ``spendstream`` command line's Typer root (started by :func:`spendstream.cli.main`).

Each command's module is imported when that command runs (:class:`LazyCommands`), so
``spendstream --help`` and light commands start without Faust, clickhouse-connect, pyarrow or
FastAPI. ``COMMANDS`` is the table: name, where the command lives and its one-line help
(``tests/test_cli_startup.py`` checks each line against the command's own help).
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

from spendstream.cli import end_on_broken_pipe
from spendstream.cli.errors import exit_code_for, message_for

# The commands that may create a ledger (chDB directory, database) where none is; any other
# command exits 2 naming the DSN it looked at (spendstream.sinks.client.LedgerMissing).
CREATES_LEDGER = frozenset({"dev", "worker", "migrate"})


class ErrorMappingGroup(TyperGroup):
    """The root command: maps every exception a command lets escape to its exit code, and
    lets only :data:`CREATES_LEDGER` create a ledger."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        from spendstream.sinks.client import allow_ledger_creation

        name, command, rest = super().resolve_command(ctx, args)
        allow_ledger_creation(name in CREATES_LEDGER)  # invoke restores the setting after
        return name, command, rest

    def invoke(self, ctx: Any) -> Any:  # a Click context (typer vendors Click privately)
        from spendstream.sinks.client import ledger_creation

        try:
            # resolve_command (called inside) narrows the setting for this command; the block
            # restores the caller's after it (tests run many commands in one process).
            with ledger_creation(True):
                return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # Click's own codes
            raise
        except BrokenPipeError:  # stdout's reader left (| head): not a bug
            end_on_broken_pipe()
        except Exception as exc:
            from spendstream.cli.common import fail

            fail(message_for(exc), exit_code_for(exc))


# name: (module, attribute: a command function or a Typer group, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "dev": (
        "spendstream.cli.dev",
        "dev",
        "Run everything on this machine: Tansu broker, worker, chDB storage (and demo traffic).",
    ),
    "migrate": (
        "spendstream.cli.data",
        "migrate",
        "Create or upgrade the ClickHouse schema (idempotent).",
    ),
    "sql": (
        "spendstream.cli.data",
        "sql",
        "Run a query against the configured ClickHouse and print the result.",
    ),
    "report": (
        "spendstream.cli.data",
        "report",
        "Spend by tag over a period (from the deduplicated ledger).",
    ),
    "send": (
        "spendstream.cli.data",
        "send",
        "Publish usage events from JSON lines through the SDK; every bad line is reported.",
    ),
    "reprice": (
        "spendstream.cli.ledger",
        "reprice",
        "Re-rate [since, until) under the current catalog as a new price version.",
    ),
    "insights": (
        "spendstream.cli.insights",
        "insights",
        "Run one insight over [since, until) (`spendstream insights list` names them).",
    ),
    "explain": (
        "spendstream.cli.explain",
        "explain_command",
        "Why spend changed: the delta split into drivers that add up to it exactly, where it "
        "lives (team → app → feature → user → model) and one sentence to paste into a channel.",
    ),
    "serve": (
        "spendstream.cli.tokens",
        "serve",
        "Serve the HTTP API standalone against the configured ClickHouse (e.g.",
    ),
    "whatif": (
        "spendstream.cli.advice",
        "whatif",
        "Re-rate a period's real traffic under changes (model moves, batch, cache share, "
        "prices, drops) without writing the ledger; before and after per scope and per day.",
    ),
    "worker": (
        "spendstream.cli.worker",
        "worker",
        "Run the stream worker against the configured broker and ClickHouse.",
    ),
    "prices": (
        "spendstream.cli.prices",
        "prices_app",
        "Price catalog: list prices, show one model, check an override file, compare with "
        "LiteLLM's price map.",
    ),
    "export": ("spendstream.cli.ledger", "export_app", "Export the ledger in standard formats."),
    "audit": ("spendstream.cli.ledger", "audit_app", "Documented audit queries over the ledger."),
    "budgets": (
        "spendstream.cli.alerts",
        "budgets_app",
        "Budgets: definitions and spend against them.",
    ),
    "alerts": ("spendstream.cli.alerts", "alerts_app", "Budget alerts: history and silences."),
    "tokens": ("spendstream.cli.tokens", "tokens_app", "API tokens: create, list, revoke."),
    "reconcile": (
        "spendstream.cli.reconcile",
        "reconcile_app",
        "Reconcile our estimate against the providers' bills.",
    ),
    "quotas": (
        "spendstream.cli.quotas",
        "quotas_app",
        "Quotas and rate limits: definitions, decisions, overrides.",
    ),
    "rates": (
        "spendstream.cli.rates",
        "rates_app",
        "Exchange rates from USD for reports, budgets and the dashboard.",
    ),
    "recommend": (
        "spendstream.cli.advice",
        "recommend_app",
        "Ranked recommendations in dollars a month, and decisions on them.",
    ),
    "anomalies": (
        "spendstream.cli.anomalies",
        "anomalies_app",
        "The anomaly inbox: episodes of [[anomalies]] rules and their state.",
    ),
    "runs": (
        "spendstream.cli.agents",
        "runs_app",
        "Agent runs: cost per run, the costliest runs, one run's steps.",
    ),
    "customers": (
        "spendstream.cli.agents",
        "customers_app",
        "Cost per customer, per feature, trend; revenue and margin.",
    ),
}


def load_command(name: str) -> Any:
    """The Click command ``name`` of :data:`COMMANDS`, importing its module now. Registered on a
    root like the real one (``rich_markup_mode=None`` reaches sub-commands as before)."""
    module, attribute, _ = COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    holder = typer.Typer(rich_markup_mode=None)
    holder.callback()(_no_options)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(target)
    return typer.main.get_group(holder).commands[name]


def _no_options() -> None:
    """A root callback, so that the holder above is a group."""


class LazyCommands(ErrorMappingGroup):
    """The root group: :data:`COMMANDS` are listed from the table and imported when run."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *super().list_commands(ctx)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in COMMANDS:
            return load_command(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The command list from the table (loading every module would defeat the laziness)."""
        rows = [(name, short_help) for name, (_, _, short_help) in COMMANDS.items()]
        for name in super().list_commands(ctx):
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(300)))
        width = formatter.width - 6 - max(len(name) for name, _ in rows)
        shown = [(name, _shorten(text, width)) for name, text in rows]
        with formatter.section("Commands"):
            formatter.write_dl(shown)


def _shorten(text: str, limit: int) -> str:
    """Click's own shortening of a help line (words, then ``...``)."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 3].rsplit(" ", 1)[0]
    return f"{cut}..."


app = typer.Typer(
    name="spendstream",
    cls=LazyCommands,  # lazy commands; exit codes by error class: spendstream.cli.errors
    help="FinOps for Generative AI: LLM usage → Kafka → Faust → ClickHouse → alerts.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # help texts show [pricing] etc. literally
)


@app.callback()
def root() -> None:
    """FinOps for Generative AI: LLM usage → Kafka → Faust → ClickHouse → alerts."""
