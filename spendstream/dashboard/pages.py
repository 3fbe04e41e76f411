"""The dashboard pages at ``/``: page shells, login and logout, and the packaged static files.

Shells carry no data: each page's script fetches the JSON API with the session cookie and
writes every value with ``textContent``, so text from events stays inert. Every response here
sends a strict Content-Security-Policy (scripts and styles from this origin only, no inline
script). The session cookie holds the token's secret: HttpOnly, SameSite=Strict, Secure over
HTTPS. State-changing requests authenticated by the cookie must also send the
``X-Spendstream-CSRF`` header (see :mod:`spendstream.auth.authenticator`), which a cross-site
form cannot.
"""

from __future__ import annotations

import math
import re
from functools import cache
from importlib import resources
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from spendstream.auth.authenticator import CSRF_HEADER, SESSION_COOKIE
from spendstream.auth.http import require
from spendstream.auth.roles import Permission, Principal
from spendstream.errors import UnavailableError

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
# (path, nav label, script): one more page is one more entry, one template and one script.
PAGES = (
    ("/", "Overview", "overview"),
    ("/explore", "Explore", "explore"),
    ("/changes", "What changed", "changes"),
    ("/budgets", "Budgets", "budgets"),
    ("/alerts", "Alerts", "alerts"),
    ("/anomalies", "Anomalies", "anomalies"),
    ("/insights", "Insights", "insights"),
    ("/recommendations", "Recommendations", "recommendations"),
    ("/runs", "Runs", "runs"),
    ("/customers", "Customers", "customers"),
    ("/prices", "Prices", "prices"),
)
STATIC_NAME = re.compile(r"^[a-z]+\.(js|css)$")
# Where /login may send the browser: a normalised path on this site, then any query. Each path
# segment is non-empty (no "//host" anywhere: "/a/..//host" resolves to "//host") and no dot
# segment ("." or "..", "%2e" too: browsers resolve them, "/.//host" is "//host"); nowhere a
# backslash ("/\\host" is "//host"), space or control character (browsers drop tabs and
# newlines, "/\t/host" is "//host"), nor their percent-encoded forms (%5c, %00-%20, %7f) in the
# path. login.js applies the same rule, then navigates only to a URL whose origin is this one.
_SEGMENT = (
    r"(?!(?:\.|%2e){1,2}(?:[/?#]|$))"  # not a dot segment
    r"(?:[^\x00-\x20\x7f\\/?#%]|%(?![01]|20|2e|5c|7f)[0-9a-f]{2})+"  # non-empty, no bad byte
)
SAME_SITE_PATH = re.compile(
    rf"^/(?:{_SEGMENT}(?:/{_SEGMENT})*/?)?(?:[?#][^\x00-\x20\x7f\\]*)?$", re.IGNORECASE
)
MEDIA = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}
SESSION_MAX_AGE_S = 12 * 3600

ReadCaller = Annotated[Principal, Depends(require(Permission.READ))]


@cache
def asset(name: str) -> bytes:
    """A file shipped in ``spendstream/dashboard/static`` (read once)."""
    return resources.files("spendstream.dashboard").joinpath("static", name).read_bytes()


def shell(title: str, script: str, active: str | None) -> str:
    """A page: fixed markup only (nothing from a request or an event goes in here)."""
    nav = "".join(
        f'<a href="{path}"{" aria-current=page" if path == active else ""}>{label}</a>'
        for path, label, _ in PAGES
    )
    header = (
        f'<header><strong class="brand">spendstream</strong><nav>{nav}</nav>'
        '<span id="who" class="muted"></span>'
        '<button id="logout" type="button">Log out</button></header>'
        if active is not None
        else '<header><strong class="brand">spendstream</strong></header>'
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title} · spendstream</title>"
        '<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/style.css">'
        '<script defer src="/static/common.js"></script>'
        f'<script defer src="/static/{script}.js"></script></head>'
        f'<body data-page="{script}">{header}<main id="main">'
        '<p id="error" class="error" role="alert" hidden></p>'
        f"{asset(script + '.html').decode()}</main></body></html>"
    )


def secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def logged_in(request: Request) -> bool:
    """True when the session cookie authenticates (no cookie: False without counting a
    failure against the client's brake). A 429 of the brake is raised, not False: the session
    may be valid, so its cookie must not be deleted for a retry later."""
    if SESSION_COOKIE not in request.cookies:
        return False
    try:
        request.app.state.authenticator.authenticate(request)
    except HTTPException as exc:
        if exc.status_code == 429:
            raise
        return False
    return True


def retry_page(status: int, title: str, message: str, seconds: int) -> Response:
    """A page without data or script: a fixed message that reloads itself after Retry-After."""
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{seconds}">'
        f"<title>{title} · spendstream</title>"
        '<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/style.css"></head>'
        '<body><header><strong class="brand">spendstream</strong></header><main id="main">'
        f'<p id="error" class="error" role="alert">{message}</p></main></body></html>'
    )
    response = HTMLResponse(html, status_code=status, headers={"Retry-After": str(seconds)})
    return secure(response)


def unavailable_page(exc: UnavailableError) -> Response:
    """503: storage down (fixed text, reloads after Retry-After)."""
    seconds = max(1, math.ceil(exc.retry_after_s))
    message = (
        f"Storage unavailable, retrying in {seconds} s. Nothing is lost: events wait in the "
        "broker until the ledger is back."
    )
    return retry_page(503, "Storage unavailable", message, seconds)


def throttled_page(exc: HTTPException) -> Response:
    """429: too many failed logins from this address (the session cookie is kept)."""
    seconds = max(1, int((exc.headers or {}).get("Retry-After", "60")))
    message = (
        f"Too many failed authentications from this address, retrying in {seconds} s. "
        "Your session is kept."
    )
    return retry_page(429, "Too many failed logins", message, seconds)


def to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return secure(response)


def require_csrf_header(request: Request) -> None:
    if request.headers.get(CSRF_HEADER) != "1":
        raise HTTPException(403, f"send the '{CSRF_HEADER}: 1' header (the dashboard does)")


def dashboard_router() -> APIRouter:
    """The pages (``/``, ``/explore``, ...), ``/login``, ``/logout`` and ``/static/*``."""
    router = APIRouter(include_in_schema=False)

    def page_route(path: str, label: str, script: str) -> None:
        @router.get(path, name=f"page_{script}")
        def page(request: Request) -> Response:
            try:
                if not logged_in(request):
                    return to_login(request)
            except UnavailableError as exc:  # the session cannot be checked now
                return unavailable_page(exc)
            except HTTPException as exc:  # 429: braked, the session may still be valid
                return throttled_page(exc)
            return secure(HTMLResponse(shell(label, script, path)))

    for path, label, script in PAGES:
        page_route(path, label, script)

    @router.get("/login")
    def login_page(request: Request) -> Response:
        for target in request.query_params.getlist("next"):
            if not SAME_SITE_PATH.match(target):
                raise HTTPException(
                    400,
                    f"next={target[:100]!r} is not a path on this site: use a normalised path "
                    "such as next=/budgets (no '//', '\\', '.' or '..' segments, spaces or "
                    "control characters, nor their %-encodings)",
                )
        return secure(HTMLResponse(shell("Log in", "login", None)))

    @router.post("/login", status_code=204)
    def login(request: Request, caller: ReadCaller) -> Response:
        """Exchange a bearer token (``Authorization`` header) for the session cookie."""
        require_csrf_header(request)
        scheme, _, secret = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            raise HTTPException(400, "log in with 'Authorization: Bearer <token>'")
        response = Response(status_code=204)
        response.set_cookie(
            SESSION_COOKIE,
            secret.strip(),
            max_age=SESSION_MAX_AGE_S,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return secure(response)

    @router.post("/logout", status_code=204)
    def logout(request: Request) -> Response:
        require_csrf_header(request)
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return secure(response)

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        if not STATIC_NAME.match(name):
            raise HTTPException(404, "no such file")
        try:
            body = asset(name)
        except (FileNotFoundError, OSError):
            raise HTTPException(404, "no such file") from None
        response = Response(body, media_type=MEDIA[name.rsplit(".", 1)[1]])
        secure(response)
        response.headers["Cache-Control"] = "public, max-age=300"
        return response

    return router
