"""``spendstream worker``: run the stream worker (its module imports Faust when it runs)."""

from __future__ import annotations

from spendstream.cli.common import ConfigOption, fail, settings_or_exit
from spendstream.cli.errors import EXIT_UNAVAILABLE


def worker(config: ConfigOption = None) -> None:
    """Run the stream worker against the configured broker and ClickHouse."""
    from clickhouse_connect.driver.exceptions import ClickHouseError

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
