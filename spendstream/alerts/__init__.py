"""Budgets and alerts: ledger-exact budget evaluation, an alert outbox, Apprise delivery.

Public API: :func:`attach` (wire into a worker), ``spendstream.alerts.cli`` (``budgets_app``,
``alerts_app``), :func:`spendstream.alerts.config.load_alerting`. Importing this package
registers the alert tables' migrations (versions 100+).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from spendstream.alerts import schema as _schema  # noqa: F401  (registers the migrations)

if TYPE_CHECKING:
    import faust

    from spendstream.alerts.service import AlertService
    from spendstream.config import Settings
    from spendstream.stream.pipeline import Pipeline


def attach(
    app: faust.App, pipeline: Pipeline, settings: Settings, config_path: str | Path | None = None
) -> AlertService | None:
    """Wire budget alerting into a worker (see :func:`spendstream.alerts.service.attach`)."""
    from spendstream.alerts.service import attach as attach_service

    return attach_service(app, pipeline, settings, config_path)


__all__ = ["attach"]
