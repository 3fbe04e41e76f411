"""Headless Chromium (Debian's ``/usr/bin/chromium``) driven by Playwright, for page tests.

Playwright's own browser download does not work on these machines; ``make test`` installs the
Debian package when it is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from spendstream.money import format_usd

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def log_in(page: Page, base: str, token: str, next_path: str = "/") -> None:
    """Log in through the login form, landing on ``next_path``."""
    page.goto(f"{base}{next_path}")
    page.wait_for_url("**/login?next=*")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{next_path}")


def usd(value: Decimal) -> str:
    """The page's money format: the one rule of :func:`spendstream.money.format_usd`."""
    return format_usd(value)
