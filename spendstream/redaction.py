"""Secrets in configuration values: what is secret in a URL, and text made safe to show."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

REDACTED = "***"
# Schemes whose URLs are addresses, not credentials: only a password in them is secret.
ADDRESS_SCHEMES = ("http", "https", "chdb", "kafka", "tcp", "clickhouse", "clickhouses")
_SECRET_QUERY_KEYS = re.compile(r"(?i)(pass|secret|token|key|auth|pwd)")
_USERINFO_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)[^@\s/]+@")


def url_secrets(url: str, address: bool | None = None) -> list[str]:
    """The secret parts of ``url``: the password (raw and decoded) and secret query values;
    for credential URLs (Apprise channels: ``slack://T/B/token``, ``mailto://user:pw@host``),
    also the whole URL and every user, host and path part that could be a token."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    address = parts.scheme in ADDRESS_SCHEMES if address is None else address
    userinfo, _, host = parts.netloc.rpartition("@")
    found = []
    if ":" in userinfo:
        password = userinfo.split(":", 1)[1]
        found += [password, unquote(password)]
    for item in parts.query.split("&"):
        key, _, value = item.partition("=")
        if value and _SECRET_QUERY_KEYS.search(key):
            found += [value, unquote(value)]
    if not address:
        found.append(url)
        parts_seen = [*userinfo.split(":"), host, *parts.path.split("/")]
        found += [part for part in parts_seen if len(part) >= 8 and "." not in part]
    return found


def configured_secrets(
    dsn: str, channels: Mapping[str, Any], keys: Iterable[str] = ()
) -> list[str]:
    """Every secret string of a configuration, longest first (so a secret that contains
    another is masked whole): the DSN's password parts, the Apprise ``channels``' credential
    parts and the plain ``keys`` (API token, admin keys); shorter than 4 characters is left."""
    found: set[str] = set(url_secrets(dsn))
    for url in channels.values():
        if isinstance(url, str):
            found.update(url_secrets(url, address=False))
    found.update(keys)
    return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)


def redact_url(url: str) -> str:
    """``url`` safe to log or show: an address keeps its scheme, user and host with the
    password and secret query values masked (``http://writer:***@ch:8123``); any other URL
    (an Apprise channel carries tokens in its path) shows only its scheme (``slack://***``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    if parts.scheme not in ADDRESS_SCHEMES:
        return f"{parts.scheme}://{REDACTED}" if parts.scheme else REDACTED
    return redact_text(url, url_secrets(url))


def redact_text(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """``text`` with every secret in ``secrets`` and every URL password replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return _USERINFO_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}@", text)
