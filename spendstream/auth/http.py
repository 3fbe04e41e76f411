"""The FastAPI side of access control: every route but health declares what it needs.

Usage in a feature's router::

    from spendstream.auth.http import require

    @router.get("/things")
    def things(caller: Principal = Depends(require(Permission.READ))) -> ...:
        ...  # filter SQL by caller.teams (see spendstream.auth.scope)

The application (``spendstream.api``) stores an :class:`Authenticator` in
``app.state.authenticator``; this module only reads it, so features never import ``api``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from fastapi import HTTPException, Request

from spendstream.auth.roles import Permission, Principal


class Authenticator(Protocol):
    def authenticate(self, request: Request) -> Principal:
        """The caller of ``request``; raises ``HTTPException(401)`` when unauthenticated."""
        ...


def require(permission: Permission) -> Callable[[Request], Principal]:
    """A dependency that authenticates the request and checks ``permission`` (401 / 403)."""

    def dependency(request: Request) -> Principal:
        authenticator: Authenticator = request.app.state.authenticator
        principal = authenticator.authenticate(request)
        if not principal.can(permission):
            raise HTTPException(
                status_code=403,
                detail=f"token {principal.name!r} (role {principal.role}) lacks the "
                f"{permission} permission; ask an admin for a token with a role that has it",
            )
        return principal

    return dependency
