"""Bearer-token authentication with a short cache and a brake on repeated failures.

:class:`TokenAuthenticator` implements :class:`spendstream.auth.http.Authenticator`. The token
comes from ``Authorization: Bearer <secret>`` or the HttpOnly ``spendstream_session`` cookie
(same secret; for browser pages). Any state-changing request the cookie authenticates must
also carry the ``X-Spendstream-CSRF: 1`` header (403 otherwise), whatever other headers it
has (an empty ``Authorization:`` included): a cross-site page cannot add it without a CORS
preflight, which the API never grants. Stored rows are cached for
``cache_s`` seconds, so a revoked token stops working within that time.

The brake slows guessing without locking out holders of valid tokens. Only a wrong credential
counts (a request with none gets its 401 and counts for nothing), and failures count per client
address *and* presented token id: a wrong secret for a stored token id counts against that id
from that address, and anything else (malformed, unknown id, revoked, expired) against the
address's "blind guess" count. Over ``max_failures`` within ``failure_window_s`` a count answers
429 (before any lookup) to what it counts, so a valid token (a stored id whose count is clean)
from a braked address still gets in; only someone guessing the secret of that very token from
that very address locks it out there. Failures are logged with the client address and the
reason, never the token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import HTTPException, Request

from spendstream.auth.roles import Principal
from spendstream.auth.tokens import TokenRecord, TokenStore, secret_matches, token_id_of
from spendstream.errors import UnavailableError
from spendstream.logs import get_logger

log = get_logger(__name__)

SESSION_COOKIE = "spendstream_session"
CSRF_HEADER = "X-Spendstream-CSRF"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="spendstream"'}


def presented_secret(request: Request) -> tuple[str | None, bool]:
    """``(secret, from_cookie)``: the bearer header's secret, else the session cookie's (None:
    neither). A non-empty ``Authorization`` header that is not a bearer token gives ``""``
    (refused as malformed); an empty one counts as absent, so the cookie (and the CSRF check
    that goes with it) applies."""
    header = request.headers.get("authorization", "").strip()
    if header:
        scheme, _, value = header.partition(" ")
        return (value.strip() if scheme.lower() == "bearer" else ""), False
    cookie = request.cookies.get(SESSION_COOKIE)
    return cookie, cookie is not None


class FailureBrake:
    """Counts authentication failures per client; refuses a client over the limit."""

    def __init__(self, max_failures: int, window_s: float) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.failures: dict[str, list[float]] = {}
        self.lock = threading.Lock()

    def _recent(self, client: str, now: float) -> list[float]:
        kept = [t for t in self.failures.get(client, []) if now - t < self.window_s]
        if kept:
            self.failures[client] = kept
        else:
            self.failures.pop(client, None)
        return kept

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: now)."""
        now = time.monotonic()
        with self.lock:
            recent = self._recent(client, now)
            if len(recent) < self.max_failures:
                return 0.0
            return max(0.0, recent[-self.max_failures] + self.window_s - now)

    def failed(self, client: str) -> None:
        with self.lock:
            self.failures.setdefault(client, []).append(time.monotonic())
            if len(self.failures) > 10_000:  # bounded memory under address spraying
                self.failures.pop(next(iter(self.failures)))


class TokenAuthenticator:
    """Authenticates requests against a :class:`TokenStore`."""

    def __init__(
        self,
        store: TokenStore,
        cache_s: float = 5.0,
        max_failures: int = 10,
        failure_window_s: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        stale_if_unavailable_s: float = 600.0,
    ) -> None:
        self.store = store
        self.cache_s = cache_s
        self.stale_if_unavailable_s = stale_if_unavailable_s
        self.brake = FailureBrake(max_failures, failure_window_s)
        self.clock = clock
        self.cache: dict[str, tuple[float, TokenRecord | None]] = {}
        self.lock = threading.Lock()
        self.primed_at: float | None = None  # monotonic time of the last snapshot of every token

    def prime(self) -> None:
        """Cache every stored token as verified now (the API calls this when it starts, and
        again after a lookup once half of ``stale_if_unavailable_s`` has passed), so a token
        that authenticated no request in this process yet still does during an outage. Best
        effort: with ClickHouse unreachable nothing changes."""
        try:
            records = self.store.all()
        except UnavailableError as exc:
            log.warning("tokens not loaded: storage unavailable", error=str(exc)[:200])
            return
        now = time.monotonic()
        with self.lock:
            if len(self.cache) + len(records) > 10_000:
                self.cache.clear()
            for record in records:
                self.cache[record.token_id] = (now, record)
            self.primed_at = now

    def _record(self, token_id: str) -> TokenRecord | None:
        now = time.monotonic()
        with self.lock:
            cached = self.cache.get(token_id)
        if cached is not None and now - cached[0] < self.cache_s:
            return cached[1]
        try:
            record = self.store.get(token_id)
        except UnavailableError:
            # Storage down: a token this process verified shortly before still authenticates, so
            # /metrics and the health of the outage stay readable by those who read them. A
            # revocation made meanwhile waits for the storage (docs/security.md).
            if cached is not None and now - cached[0] < self.stale_if_unavailable_s:
                return cached[1]
            raise
        with self.lock:
            if len(self.cache) > 10_000:
                self.cache.clear()
            self.cache[token_id] = (now, record)
            snapshot_age = None if self.primed_at is None else now - self.primed_at
        if snapshot_age is not None and snapshot_age > self.stale_if_unavailable_s / 2:
            self.prime()  # storage answers now: keep every token's copy recent
        return record

    def forget(self, token_id: str) -> None:
        """Drop a cached row (after a revocation in this process)."""
        with self.lock:
            self.cache.pop(token_id, None)

    def _known(self, token_id: str) -> bool:
        """True when this process has seen a stored token with this id (the cache, primed with
        every token): an id worth looking up even from an address braked for blind guesses."""
        with self.lock:
            cached = self.cache.get(token_id)
        return cached is not None and cached[1] is not None

    def _throttled(self, key: str, client: str, path: str) -> HTTPException | None:
        wait = self.brake.retry_after(key)
        if wait <= 0:
            return None
        log.warning("authentication throttled", client=client, path=path)
        return HTTPException(
            status_code=429,
            detail=f"too many failed authentications from {client}; retry in {wait:.0f}s "
            "with a valid token (a valid token of another id is not braked)",
            headers={"Retry-After": str(int(wait) + 1)},
        )

    def _refuse(self, key: str, client: str, reason: str, path: str) -> HTTPException:
        self.brake.failed(key)
        log.warning("authentication failed", client=client, reason=reason, path=path)
        return no_token(reason)

    def authenticate(self, request: Request) -> Principal:
        client = request.client.host if request.client else "unknown"
        path = request.url.path
        secret, from_cookie = presented_secret(request)
        if secret is None:  # no credentials: not a guess, so no brake either way
            raise no_token("no token")
        if (
            from_cookie
            and request.method not in SAFE_METHODS
            and request.headers.get(CSRF_HEADER) != "1"
        ):
            raise HTTPException(
                status_code=403,
                detail=f"a {request.method} with the session cookie needs the "
                f"'{CSRF_HEADER}: 1' header (or use 'Authorization: Bearer <token>')",
            )
        token_id = token_id_of(secret)
        blind = f"{client} *"  # malformed tokens, unknown ids, revoked and expired ones
        unknown = token_id is None or not self._known(token_id)
        if unknown and (throttled := self._throttled(blind, client, path)) is not None:
            raise throttled
        if token_id is None:
            raise self._refuse(blind, client, "malformed token", path)
        aimed = f"{client} {token_id}"  # wrong secrets for this stored id from this address
        if (throttled := self._throttled(aimed, client, path)) is not None:
            raise throttled
        record = self._record(token_id)
        if record is None:
            raise self._refuse(blind, client, "unknown token", path)
        if not secret_matches(secret, record.secret_sha256):
            raise self._refuse(aimed, client, "unknown token", path)
        if record.revoked_at is not None:
            raise self._refuse(blind, client, f"token {record.name!r} was revoked", path)
        if not record.active(self.clock()):
            raise self._refuse(blind, client, f"token {record.name!r} has expired", path)
        return record.principal()


def no_token(reason: str) -> HTTPException:
    """401 saying why and how to authenticate."""
    return HTTPException(
        status_code=401,
        detail=f"{reason}; send 'Authorization: Bearer <token>' with a valid token "
        "(create one with `spendstream tokens create`)",
        headers=CHALLENGE,
    )
