"""Budgets and budget alerts: ledger-exact budget evaluation (thresholds, forecasts, spikes,
reminders, prompt growth) and silences. Alerts go out through :mod:`spendstream.notifications`.

Public API: :class:`spendstream.alerts.service.AlertService` (the evaluation thread and the
notification dispatcher, started by the worker) and :func:`spendstream.alerts.config.load_alerting`.
Free of Faust: the worker wires it. The ``spendstream budgets`` / ``alerts`` commands live in
:mod:`spendstream.cli.alerts`.
"""
