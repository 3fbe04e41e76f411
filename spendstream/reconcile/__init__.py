"""Reconciliation: the providers' own cost and usage reports against our ledger.

Public surface: :func:`spendstream.reconcile.providers.parse_pages` and
:func:`spendstream.reconcile.focus_bill.parse_focus` (reports → invoice lines),
:class:`spendstream.reconcile.store.InvoiceStore` (idempotent loading),
:class:`spendstream.reconcile.fetch.AdminClient` (the providers' admin APIs),
:func:`spendstream.reconcile.variance.compute_variance` (the explained difference),
:class:`spendstream.reconcile.alerting.ReconciliationAlerts` (``reconciliation`` alerts through
the alert outbox), :func:`spendstream.reconcile.http.reconcile_router` (``GET
/reconcile/variance``, for the api part to mount) and ``reconcile.schema.MIGRATIONS``.
Free of Faust; the ``spendstream reconcile`` commands live in :mod:`spendstream.cli.reconcile`.
"""
