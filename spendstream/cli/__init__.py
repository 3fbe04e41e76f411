"""The ``spendstream`` command line."""

from __future__ import annotations

import typer

from spendstream.cli import data
from spendstream.cli.common import ConfigOption, settings_or_exit
from spendstream.cli.dev import dev

app = typer.Typer(
    name="spendstream",
    help="FinOps for Generative AI: LLM usage → Kafka → Faust → ClickHouse → alerts.",
    no_args_is_help=True,
    add_completion=False,
)
app.command()(dev)
app.command()(data.migrate)
app.command()(data.sql)
app.command()(data.report)


@app.command()
def worker(config: ConfigOption = None) -> None:
    """Run the stream worker against the configured broker and ClickHouse."""
    from spendstream.stream.worker import run_worker

    run_worker(settings_or_exit(config))


def main() -> None:
    app()
