"""The dev inbox records what notifiers send (Apprise's json://, as the dev stack's worker
does) and refuses what a web page could plant: cross-site posts and bodies that are no object."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import apprise
import httpx
import pytest

from spendstream.cli.dev_inbox import DevInbox


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[DevInbox]:
    inbox = DevInbox(tmp_path / "alerts.jsonl").start()
    try:
        yield inbox
    finally:
        inbox.stop()


def test_apprise_json_notifications_arrive(inbox: DevInbox) -> None:
    notifier = apprise.Apprise()
    assert notifier.add(inbox.apprise_url)
    assert notifier.notify(body="search-daily at 80%", title="budget alert")
    (line,) = inbox.log_path.read_text().splitlines()
    recorded = json.loads(line)
    assert recorded["title"] == "budget alert" and recorded["message"] == "search-daily at 80%"
    assert inbox.count == 1 and list(inbox.received) == [recorded]


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        # A page's fetch/form: text/plain needs no preflight, and the browser adds Origin.
        ({"Origin": "http://evil.example", "Content-Type": "text/plain"}, b'{"title":"FAKE"}', 403),
        ({"Origin": "http://evil.example", "Content-Type": "application/json"}, b"{}", 403),
        ({"Content-Type": "text/plain"}, b'{"title":"FAKE"}', 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"title=FAKE", 415),
        ({"Content-Type": "application/json"}, b"[1]", 400),
        ({"Content-Type": "application/json"}, b"not json", 400),
        ({"Content-Type": "application/json"}, b'"text"', 400),
    ],
)
def test_hostile_posts_are_refused_and_not_recorded(
    inbox: DevInbox, headers: dict[str, str], body: bytes, status: int
) -> None:
    answer = httpx.post(f"http://127.0.0.1:{inbox.port}/alerts", headers=headers, content=body)
    assert answer.status_code == status, answer.text
    assert answer.text  # says what to send instead
    assert not inbox.log_path.exists() and inbox.count == 0
