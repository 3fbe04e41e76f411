"""Headless Chromium (Debian's ``/usr/bin/chromium``) driven by Playwright, for page tests.

Playwright's own browser download does not work on these machines; ``make test`` installs the
Debian package when it is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest
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


@contextmanager
def watched_page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A 1280x900 page and the problems it met: dialogs (dismissed), script errors and Content
    Security Policy violations; a test asserts the list is empty when it is done."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(90_000)  # a shared 2-core machine can be slow; never a bound
    page = context.new_page()
    problems: list[str] = []
    page.on("dialog", lambda d: (problems.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    try:
        yield page, problems
    finally:
        context.close()


def log_in(page: Page, base: str, token: str, next_path: str = "/") -> None:
    """Log in through the login form, landing on ``next_path``."""
    page.goto(f"{base}{next_path}")
    page.wait_for_url("**/login?next=*")
    page.fill("#token", token)
    page.click("button[type=submit]")
    # The page may already have rewritten its query string (Explore and Insights do, with
    # replaceState, adding the fields the link left out) by the time this looks, so only the
    # path is matched.
    landing = urlsplit(f"{base}{next_path}")
    page.wait_for_url(lambda url: urlsplit(url)[:3] == landing[:3])


def usd(value: Decimal) -> str:
    """The page's money format: the one rule of :func:`spendstream.money.format_usd`."""
    return format_usd(value)


def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where page tests save screenshots: the pytest tmp dir, so a test run leaves the checkout
    clean; ``SPENDSTREAM_SHOTS=docs/img`` refreshes the documentation's images instead."""
    chosen = os.environ.get("SPENDSTREAM_SHOTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
