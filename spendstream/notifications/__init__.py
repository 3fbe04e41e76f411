"""Notifications: one outbox and one delivery for every kind (budget, quota, reconciliation,
digest, and kinds to come), sent only by the holder of the alerting lease.

Public API: a typed record per kind (:mod:`spendstream.notifications.kinds`) handed to
:meth:`spendstream.notifications.outbox.Outbox.enqueue`; the
:class:`~spendstream.notifications.delivery.Dispatcher` (run by the worker's alerting role) and
:func:`~spendstream.notifications.fenced.deliver_as_leader` (commands); ``schema.MIGRATIONS``.
See docs/notifications.md.
"""
