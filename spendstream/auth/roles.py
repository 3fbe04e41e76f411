"""Roles and permissions. A role is a set of permissions; a principal is a token's holder."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Permission(StrEnum):
    INGEST = "ingest"  # publish usage events (HTTP ingest)
    ADMIT = "admit"  # ask for admission decisions (guardrails)
    READ = "read"  # reports, budgets, alerts, insights, prices (team-scoped when teams are set)
    OPERATE = "operate"  # silences, acknowledgements, quota overrides
    ADMIN = "admin"  # tokens, re-rating, free SQL, everything else


class Role(StrEnum):
    SERVICE = "service"
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.SERVICE: frozenset({Permission.INGEST, Permission.ADMIT}),
    Role.VIEWER: frozenset({Permission.READ}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.OPERATE}),
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. ``teams`` is None for every team, else the only teams whose
    rows this caller may see or act on (enforced in the SQL the server writes)."""

    name: str
    role: Role
    teams: frozenset[str] | None = None

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def sees_team(self, team: str) -> bool:
        return self.teams is None or team in self.teams
