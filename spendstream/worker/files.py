"""The worker's configuration files, loaded and cross-checked before anything is touched (the
worker and ``spendstream serve`` both start with :func:`load_worker_config`)."""

from __future__ import annotations

from dataclasses import dataclass

from spendstream.alerts.config import Alerting, load_alerting
from spendstream.anomalies import AnomalyRule, load_anomalies
from spendstream.config import ConfigError, Settings
from spendstream.pricing import Pricer, load_pricer
from spendstream.quotas.config import Quotas, load_quotas


@dataclass(frozen=True)
class WorkerConfig:
    """The validated configuration files: prices, budgets and alerting, quotas, anomalies."""

    pricer: Pricer
    alerting: Alerting
    quotas: Quotas
    anomalies: tuple[AnomalyRule, ...]


def check_digest_channels(settings: Settings, alerting: Alerting) -> None:
    """Every ``[digest] channels`` and ``[agents.runaway] channels`` name is an
    ``[alerts.channels]`` entry (ConfigError)."""
    for key, names in (
        ("digest.channels", settings.digest.channels),
        ("agents.runaway.channels", settings.agents.runaway.channels),
    ):
        unknown = [c for c in names if c not in alerting.alerts.channels]
        if unknown:
            raise ConfigError(
                f"{alerting.source}: {key} = {unknown}: not in [alerts.channels] "
                f"({', '.join(alerting.alerts.channels) or 'none defined'}); define them there"
            )


def load_worker_config(settings: Settings) -> WorkerConfig:
    """Step 1: load and check every configuration file; ConfigError before touching anything."""
    alerting = load_alerting(settings, settings.source)
    config = WorkerConfig(
        load_pricer(settings),
        alerting,
        load_quotas(settings, settings.source),
        load_anomalies(settings, alerting, settings.source),
    )
    check_digest_channels(settings, config.alerting)
    return config


__all__ = ["WorkerConfig", "check_digest_channels", "load_worker_config"]
