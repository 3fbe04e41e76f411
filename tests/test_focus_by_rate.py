"""``focus.by_rate`` reads its keys by column name (pure: rows made here, no ledger)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from spendstream.sinks import focus
from spendstream.sinks.access import QueryResult

COLUMNS = [
    "day",
    "region",
    "provider",
    "model",
    "tag_set",
    "customer",
    "price_ref",
    "batch",
    "price_version",
    "driver",
    "events",
    "requests",
    "unpriced",
    "quantity",
    "cost",
]


def row(day: int, version: int, cost: str) -> list[Any]:
    """1,000 input tokens of gpt-4o under one reference, on ``day`` of December."""
    ref = "openai/gpt-4o+override:deal"
    head = [date(2026, 12, day), "eu", "openai", "gpt-4o", {"team": "qa"}, ""]
    return [*head, ref, False, version, "input", 1, 1, 0, 1000, cost]


def refs(result: QueryResult) -> list[tuple[str, str]]:
    return sorted((str(item["day"]), item["price_ref"]) for item in focus.by_rate(result))


def test_a_reference_with_two_rates_is_told_apart_across_days() -> None:
    result = QueryResult(COLUMNS, [row(1, 3, "0.0025"), row(2, 7, "0.002"), row(3, 9, "0.002")])
    expected = [
        ("2026-12-01", "openai/gpt-4o+override:deal#v3"),
        ("2026-12-02", "openai/gpt-4o+override:deal#v7"),
        ("2026-12-03", "openai/gpt-4o+override:deal#v7"),
    ]
    assert refs(result) == expected


def test_a_column_added_to_the_key_shifts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A column added at the head of the key (``region`` here): the rows of one price are
    still compared across days, as without it (positional slices would have taken the day
    for part of the price and left each day's rate alone, without its ``#v``)."""
    result = QueryResult(COLUMNS, [row(1, 3, "0.0025"), row(2, 7, "0.002")])
    before = refs(result)
    monkeypatch.setattr(focus, "KEY", ("region", *focus.KEY))
    assert (
        refs(result)
        == before
        == [
            ("2026-12-01", "openai/gpt-4o+override:deal#v3"),
            ("2026-12-02", "openai/gpt-4o+override:deal#v7"),
        ]
    )
