"""The page tests' pytest fixtures, imported by name into a test module (``browser``: one
Chromium per module; ``shots``: where screenshots go; ``page``: a watched page whose dialogs,
script errors and CSP violations fail the test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.support.browser import chromium, screenshot_dir, watched_page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshot_dir(tmp_path_factory)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with watched_page(browser) as (page, problems):
        yield page
    assert problems == [], f"dialogs, script errors or CSP violations: {problems}"
