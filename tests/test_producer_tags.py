"""Tag layers: precedence, scoping across threads, and conflict reporting."""

from __future__ import annotations

import logging
import threading

import pytest

from spendstream.producers import TagMerger, current_scopes, tags


def test_precedence_per_call_over_inner_over_outer_over_defaults() -> None:
    conflicts: list[int] = []
    merger = TagMerger({"team": "core", "env": "prod"}, on_conflict=lambda: conflicts.append(1))
    assert merger.merge(None) == {"team": "core", "env": "prod"}
    with tags(team="search", app="web"), tags(team="ranking", feature="qa"):
        merged = merger.merge({"feature": "chat"})
        assert merged == {"team": "ranking", "env": "prod", "app": "web", "feature": "chat"}
    # team: core->search, search->ranking; feature: qa->chat
    assert len(conflicts) == 3
    assert current_scopes() == ()
    assert merger.merge({"env": "prod"}) == {"team": "core", "env": "prod"}  # same value: fine
    assert len(conflicts) == 3


def test_conflict_is_warned_once_per_key_and_values_but_always_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conflicts: list[int] = []
    merger = TagMerger({"team": "core"}, on_conflict=lambda: conflicts.append(1))
    with caplog.at_level(logging.WARNING, logger="spendstream.producers"):
        for _ in range(3):
            merger.merge({"team": "search"})
        merger.merge({"team": "ads"})
    logs = [record.spendstream for record in caplog.records]  # type: ignore[attr-defined]
    warnings = [entry for entry in logs if entry["event"] == "tag_conflict"]
    assert [(w["key"], w["overridden"], w["kept"]) for w in warnings] == [
        ("team", "core", "search"),
        ("team", "core", "ads"),
    ]
    assert len(conflicts) == 4


def test_scopes_do_not_leak_between_threads() -> None:
    merger = TagMerger()
    seen: dict[str, dict[str, str]] = {}
    barrier = threading.Barrier(2)

    def worker(team: str) -> None:
        with tags(team=team):
            barrier.wait()
            seen[team] = merger.merge(None)

    threads = [threading.Thread(target=worker, args=(team,)) for team in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"a": {"team": "a"}, "b": {"team": "b"}}
