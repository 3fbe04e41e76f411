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
from playwright.sync_api import Browser, Page, Response, sync_playwright
from playwright.sync_api import Error as PlaywrightError

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


# The API's refusals each open watched page met, by id(page): read by page_state.
PAGE_REFUSALS: dict[int, list[str]] = {}


@contextmanager
def watched_page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A 1280x900 page and the problems it met: dialogs (dismissed), script errors and Content
    Security Policy violations; a test asserts the list is empty when it is done."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(90_000)  # a shared 2-core machine can be slow; never a bound
    page = context.new_page()
    problems: list[str] = []
    refusals: list[str] = []  # the API's 4xx/5xx answers, for a failing test's report
    page.on("response", lambda r: refusals.append(line) if (line := refused(r)) else None)
    PAGE_REFUSALS[id(page)] = refusals
    page.on("dialog", lambda d: (problems.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    try:
        yield page, problems
    finally:
        PAGE_REFUSALS.pop(id(page), None)
        context.close()


def refused(response: Response) -> str | None:
    """An API answer that refused (status >= 400), as a line; its body is not read (a body the
    page never consumed can keep Playwright waiting): the page's error box shows its detail."""
    if response.status < 400 or "/api/" not in response.url:
        return None
    return f"{response.status} {response.request.method} {response.url}"


def page_state(page: Page) -> list[str]:
    """What a person would see of a page that did not reach what a test waited for: its URL,
    the error box, and the API's refusals since the page opened."""
    lines = [f"url: {page.url}"]
    try:
        box = page.locator("#error")
        if box.count() and box.is_visible():
            lines.append(f"error box: {box.inner_text()}")
    except PlaywrightError as exc:
        lines.append(f"page unreadable: {exc}")
    lines.extend(f"API refused: {line}" for line in PAGE_REFUSALS.get(id(page), []))
    return lines


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
