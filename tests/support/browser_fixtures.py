"""The page tests' pytest fixtures, imported by name into a test module (``browser``: one
Chromium per module; ``shots``: where screenshots go; ``page``: a watched page whose dialogs,
script errors and CSP violations fail the test). A page test that fails reports what the page
showed, the API's refusals and the tail of its worker's log (a wait that times out says why)."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.support.browser import chromium, page_state, screenshot_dir, watched_page

OPEN_PAGE = pytest.StashKey[Page]()
LOG_LINES = 30


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshot_dir(tmp_path_factory)


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    with watched_page(browser) as (page, problems):
        request.node.stash[OPEN_PAGE] = page
        yield page
        del request.node.stash[OPEN_PAGE]
    assert problems == [], f"dialogs, script errors or CSP violations: {problems}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed page test's report gains the page's state and its worker's last log lines
    (taken before the fixtures tear down, while the page is still open)."""
    report = yield
    if report.when == "call" and report.failed and OPEN_PAGE in item.stash:
        report.sections.append(("page", "\n".join(page_state(item.stash[OPEN_PAGE]))))
        for log in worker_logs(getattr(item, "funcargs", {})):
            tail = log.read_text(errors="replace").splitlines()[-LOG_LINES:]
            report.sections.append((f"worker log {log}", "\n".join(tail)))
    return report


def worker_logs(funcargs: dict[str, Any]) -> list[Path]:
    """The log files of the workers a test's fixtures started (an ``ApiEnv``'s, say)."""
    found = []
    for value in funcargs.values():
        path = getattr(getattr(value, "worker", None), "log_path", None)
        if isinstance(path, Path) and path.exists():
            found.append(path)
    return found
