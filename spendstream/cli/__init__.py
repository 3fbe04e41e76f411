"""The ``spendstream`` command line."""

from __future__ import annotations

import typer
from clickhouse_connect.driver.exceptions import ClickHouseError

from spendstream.cli import data, ledger
from spendstream.cli.advice import recommend_app, whatif
from spendstream.cli.agents import customers_app, runs_app
from spendstream.cli.alerts import alerts_app, budgets_app
from spendstream.cli.anomalies import anomalies_app
from spendstream.cli.common import ConfigOption, fail, settings_or_exit
from spendstream.cli.dev import dev
from spendstream.cli.errors import EXIT_UNAVAILABLE, ErrorMappingGroup
from spendstream.cli.explain import explain_command
from spendstream.cli.insights import insights
from spendstream.cli.prices import prices_app
from spendstream.cli.quotas import quotas_app
from spendstream.cli.reconcile import reconcile_app
from spendstream.cli.tokens import serve, tokens_app

app = typer.Typer(
    name="spendstream",
    cls=ErrorMappingGroup,  # exit codes by error class: spendstream.cli.errors
    help="FinOps for Generative AI: LLM usage → Kafka → Faust → ClickHouse → alerts.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # help texts show [pricing] etc. literally
)
app.command()(dev)
app.command()(data.migrate)
app.command()(data.sql)
app.command()(data.report)
app.command()(data.send)
app.command()(ledger.reprice)
app.command()(insights)
app.command("explain")(explain_command)
app.add_typer(prices_app, name="prices")
app.add_typer(ledger.export_app, name="export")
app.add_typer(ledger.audit_app, name="audit")
app.add_typer(budgets_app, name="budgets")
app.add_typer(alerts_app, name="alerts")
app.add_typer(anomalies_app, name="anomalies")
app.add_typer(tokens_app, name="tokens")
app.command()(serve)
app.add_typer(reconcile_app, name="reconcile")
app.add_typer(quotas_app, name="quotas")
app.add_typer(recommend_app, name="recommend")
app.command()(whatif)
app.add_typer(runs_app, name="runs")
app.add_typer(customers_app, name="customers")


@app.command()
def worker(config: ConfigOption = None) -> None:
    """Run the stream worker against the configured broker and ClickHouse."""
    from spendstream.config import ConfigError, redact_text, redact_url
    from spendstream.worker.build import run_worker

    settings = settings_or_exit(config, quiet=False)
    try:
        run_worker(settings)
    except ConfigError as exc:  # [pricing] / [[budgets]] are validated when the worker builds
        fail(redact_text(str(exc), settings.secret_values()), 2)
    except (OSError, ClickHouseError) as exc:  # still unreachable after startup_timeout_s
        fail(
            f"ClickHouse at {redact_url(settings.clickhouse.dsn)} not reachable after "
            f"{settings.worker.startup_timeout_s:.0f}s (worker.startup_timeout_s): "
            + redact_text(str(exc), settings.secret_values()),
            EXIT_UNAVAILABLE,
        )


def main() -> None:
    app()
