"""Budgets and alerts: ledger-exact budget evaluation, an alert outbox, Apprise delivery.

Public API: :class:`spendstream.alerts.service.AlertService` (the evaluation and delivery
threads, started by the worker), :func:`spendstream.alerts.config.load_alerting`, and
``alerts.schema.MIGRATIONS`` (the alert tables). Free of Faust: the worker wires it.
The ``spendstream budgets`` / ``alerts`` commands live in :mod:`spendstream.cli.alerts`.
"""
