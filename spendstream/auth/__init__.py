"""Access control: who is calling (:class:`Principal`), what a role may do (:class:`Permission`),
and the FastAPI dependency every HTTP route uses (:func:`spendstream.auth.http.require`).

Layering: auth sits above ``sinks`` and below every feature that exposes data (alerts, quotas,
insights, reconcile, ingest) and the ``api`` package that mounts their routers.
"""

from spendstream.auth.roles import ROLE_PERMISSIONS, Permission, Principal, Role

__all__ = ["ROLE_PERMISSIONS", "Permission", "Principal", "Role"]
