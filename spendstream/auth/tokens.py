"""API tokens: minting, the ClickHouse store (only hashes), and the no-escalation rule.

A secret reads ``sst_<token_id>_<43 url-safe chars>`` (32 random bytes). The id lets the server
find the one row to compare against; the comparison is of SHA-256 digests, in constant time.
Blocking (clickhouse-connect): call from threads, never from an event loop.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from spendstream.auth.roles import ROLE_PERMISSIONS, Principal, Role
from spendstream.auth.schema import TOKEN_COLUMNS
from spendstream.errors import ForbiddenError, InputError
from spendstream.sinks.errors import storage_errors
from spendstream.sinks.versions import next_version

PREFIX = "sst_"
SECRET_PATTERN = re.compile(r"^sst_([0-9a-f]{16})_[A-Za-z0-9_-]{43}$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
TEAM_PATTERN = re.compile(r"^[^\x00-\x1f]{1,128}$")


class TokenError(InputError, ValueError):
    """A token request that cannot be honoured; the message says what to change."""


class EscalationError(TokenError, ForbiddenError):
    """The creator would grant rights it does not hold."""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_id_of(secret: str) -> str | None:
    """The id embedded in a well-formed secret, else None (nothing to look up)."""
    match = SECRET_PATTERN.match(secret)
    return match.group(1) if match else None


def secret_matches(secret: str, secret_sha256: str) -> bool:
    return hmac.compare_digest(digest(secret), secret_sha256)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """One stored token (no secret). ``teams`` empty: every team."""

    token_id: str
    name: str
    role: Role
    teams: tuple[str, ...]
    secret_sha256: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    version: int = 0

    def principal(self) -> Principal:
        return Principal(self.name, self.role, frozenset(self.teams) if self.teams else None)

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def row(self) -> list[Any]:
        return [
            self.token_id,
            self.name,
            str(self.role),
            list(self.teams),
            self.secret_sha256,
            self.created_at,
            self.created_by,
            self.expires_at,
            self.revoked_at,
            self.version,
        ]

    def public(self, now: datetime) -> dict[str, Any]:
        """What ``tokens list`` shows: everything but the hash."""
        state = "revoked" if self.revoked_at else ("active" if self.active(now) else "expired")
        return {
            "id": self.token_id,
            "name": self.name,
            "role": str(self.role),
            "teams": list(self.teams),
            "state": state,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    moment: datetime = value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def check_grant(creator: Principal | None, role: Role, teams: Sequence[str]) -> None:
    """Raise :class:`EscalationError` unless ``creator`` holds every right of the new token:
    its role's permissions and, when the creator is team-scoped, a non-empty subset of its
    teams. ``creator`` None is the local operator (filesystem access to the data: all rights).
    """
    if creator is None:
        return
    missing = ROLE_PERMISSIONS[role] - ROLE_PERMISSIONS[creator.role]
    if missing:
        raise EscalationError(
            f"token {creator.name!r} (role {creator.role}) cannot create a {role} token: it "
            f"lacks {', '.join(sorted(missing))}; choose a role no stronger than {creator.role}"
        )
    if creator.teams is not None:
        outside = sorted(set(teams) - creator.teams)
        if not teams or outside:
            raise EscalationError(
                f"token {creator.name!r} is limited to teams {sorted(creator.teams)}; pass "
                f"--team with some of those (not {outside or 'every team'})"
            )


class TokenStore:
    """Tokens in ClickHouse (``auth_tokens FINAL``). Thread-safe (one lock around the client)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.lock = threading.Lock()

    def _select(self, where: str, parameters: dict[str, Any]) -> list[TokenRecord]:
        with self.lock, storage_errors():  # an outage is a 503, not a refused token
            result = self.client.query(
                f"SELECT {', '.join(TOKEN_COLUMNS)} FROM auth_tokens FINAL WHERE {where} "
                "ORDER BY created_at, token_id",
                parameters=parameters,
            )
        return [
            TokenRecord(
                token_id=str(r[0]),
                name=str(r[1]),
                role=Role(r[2]),
                teams=tuple(r[3]),
                secret_sha256=str(r[4]),
                created_at=_utc(r[5]) or datetime.now(UTC),
                created_by=str(r[6]),
                expires_at=_utc(r[7]),
                revoked_at=_utc(r[8]),
                version=int(r[9]),
            )
            for r in result.result_rows
        ]

    def get(self, token_id: str) -> TokenRecord | None:
        found = self._select("token_id = {id:String}", {"id": token_id})
        return found[0] if found else None

    def all(self) -> list[TokenRecord]:
        return self._select("1", {})

    def find(self, name_or_id: str) -> list[TokenRecord]:
        """Unrevoked tokens whose id or name is ``name_or_id``."""
        return self._select(
            "(token_id = {key:String} OR name = {key:String}) AND revoked_at IS NULL",
            {"key": name_or_id},
        )

    def _write(self, records: Iterable[TokenRecord]) -> None:
        with self.lock, storage_errors():
            self.client.insert(
                "auth_tokens", [r.row() for r in records], column_names=TOKEN_COLUMNS
            )

    def create(
        self,
        name: str,
        role: Role,
        teams: Sequence[str] = (),
        expires_at: datetime | None = None,
        creator: Principal | None = None,
        created_by: str = "",
        now: datetime | None = None,
    ) -> tuple[TokenRecord, str]:
        """Store a new token; returns it and its secret (shown once, never stored)."""
        now = now or datetime.now(UTC)
        if not NAME_PATTERN.match(name):
            raise TokenError(
                f"token name {name!r} is invalid: use 1-64 letters, digits, '_', '.', '@' "
                "or '-', starting with a letter or digit"
            )
        bad = [team for team in teams if not TEAM_PATTERN.match(team)]
        if bad:
            raise TokenError(f"team names {bad!r} are invalid: 1-128 printable characters")
        if expires_at is not None and expires_at <= now:
            raise TokenError("the expiry is in the past: pass a positive --expires (e.g. 90d)")
        check_grant(creator, role, teams)
        if self.find(name):
            raise TokenError(
                f"a token named {name!r} exists; revoke it first or choose another name"
            )
        token_id = secrets.token_hex(8)
        secret = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        record = TokenRecord(
            token_id=token_id,
            name=name,
            role=role,
            teams=tuple(sorted(set(teams))),
            secret_sha256=digest(secret),
            created_at=now,
            created_by=created_by or (creator.name if creator else ""),
            expires_at=expires_at,
            version=next_version(),
        )
        self._write([record])
        return record, secret

    def revoke(
        self, name_or_id: str, creator: Principal | None = None, now: datetime | None = None
    ) -> list[TokenRecord]:
        """Revoke the unrevoked tokens called ``name_or_id`` (a team-scoped admin: only tokens
        inside its teams). Raises :class:`TokenError` when there is none."""
        now = now or datetime.now(UTC)
        found = self.find(name_or_id)
        if not found:
            raise TokenError(f"no active token has the name or id {name_or_id!r}")
        for record in found:
            check_grant(creator, record.role, record.teams)
        revoked = [replace(r, revoked_at=now, version=next_version()) for r in found]
        self._write(revoked)
        return revoked
