"""The local admin token of an embedded setup (``spendstream dev``): created on first start and
kept in a file only its owner can read (mode 0600)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from spendstream.auth.roles import Role
from spendstream.auth.tokens import TokenStore, secret_matches, token_id_of

LOCAL_ADMIN = "local-admin"


def write_secret(path: Path, secret: str) -> None:
    """Write ``secret`` to ``path`` readable by the owner only (created with mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    os.replace(temporary, path)


def ensure_admin_token(store: TokenStore, path: Path) -> bool:
    """Make ``path`` hold a live admin token; returns True when one was created now.

    A file whose token is still active is kept; otherwise a previous ``local-admin`` token is
    revoked and a new one created (so a deleted file does not leave a live orphan)."""
    now = datetime.now(UTC)
    try:
        secret = path.read_text().strip()
    except OSError:
        secret = ""
    token_id = token_id_of(secret)
    record = store.get(token_id) if token_id else None
    if record is not None and record.active(now) and secret_matches(secret, record.secret_sha256):
        return False
    if store.find(LOCAL_ADMIN):
        store.revoke(LOCAL_ADMIN, now=now)
    _, secret = store.create(LOCAL_ADMIN, Role.ADMIN, created_by="spendstream", now=now)
    write_secret(path, secret)
    return True
