"""The token table: migration 200 (in the list :mod:`spendstream.worker.schema` assembles).

``auth_tokens`` holds one row per API token: never the secret, only its SHA-256 (secrets are
32 random bytes, so a fast hash is enough: there is nothing to brute-force). ReplacingMergeTree
on ``version``, read with ``FINAL``: revoking a token writes a new row with ``revoked_at`` set.
``teams`` empty means every team.
"""

from __future__ import annotations

from spendstream.sinks.migrations import Migration

TIME = "DateTime64(3, 'UTC')"

AUTH_TOKENS = f"""
CREATE TABLE IF NOT EXISTS auth_tokens (
    token_id String,
    name String,
    role LowCardinality(String),
    teams Array(String),
    secret_sha256 String,
    created_at {TIME},
    created_by String,
    expires_at Nullable({TIME}),
    revoked_at Nullable({TIME}),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY token_id
"""

TOKEN_COLUMNS = (
    "token_id",
    "name",
    "role",
    "teams",
    "secret_sha256",
    "created_at",
    "created_by",
    "expires_at",
    "revoked_at",
    "version",
)

MIGRATIONS: tuple[Migration, ...] = (Migration(200, "auth_tokens", (AUTH_TOKENS,)),)
