"""The pasted sentence names each new or vanished thing once: a new user seen in two places
(env=prod and env=staging) is one item with the places they share and the shares added
(the demo's sentence once read "17 % a new user user-runaway (… env=prod …); … 6 % a new user
user-runaway (… env=staging …)")."""

from __future__ import annotations

from decimal import Decimal

from spendstream.explain.cells import Measures
from spendstream.explain.decompose import INPUT, NEW, VOLUME, CellChange
from spendstream.explain.report import Highlight
from spendstream.explain.sentence import merged, phrase, sentence

SUPPORT = (("team", "support"), ("feature", "reply-draft"))
KEY = ("support", "", "", "reply-draft", "", "openai", "gpt-4o", False)


def new_user(env: str, amount: str, share: str) -> Highlight:
    path = (*SUPPORT, ("env", env), ("user", "u-77"))
    return Highlight(NEW, path, Decimal(amount), Decimal(share), ())


def test_one_new_user_in_two_places_is_one_item() -> None:
    growth = Highlight(INPUT, SUPPORT, Decimal("2.89"), Decimal("0.13"), ())
    found = [new_user("prod", "3.80", "0.17"), growth, new_user("staging", "1.30", "0.06")]
    text = sentence("all spend", Decimal("1.39"), Decimal("23.35"), "last week", found, [])
    assert text.count("u-77") == 1
    assert "; 23 % a new user u-77 (team=support feature=reply-draft)" not in text  # largest first
    assert ": 23 % a new user u-77 (team=support feature=reply-draft); 13 % " in text
    (joined,) = [h for h in merged(found) if h.driver == NEW]
    assert joined.amount == Decimal("5.10") and joined.share == Decimal("0.23")


def test_different_new_things_and_other_drivers_stay_apart() -> None:
    other = Highlight(NEW, (*SUPPORT, ("user", "u-78")), Decimal("1"), Decimal("0.05"), ())
    growth = Highlight(INPUT, SUPPORT, Decimal("2"), Decimal("0.1"), ())
    again = Highlight(INPUT, (("team", "search"),), Decimal("3"), Decimal("0.15"), ())
    found = [new_user("prod", "4", "0.2"), other, growth, again]
    assert [h.amount for h in merged(found)] == [Decimal(4), Decimal(3), Decimal(2), Decimal(1)]


def test_offsetting_movements_are_told_in_dollars_not_shares_past_100_percent() -> None:
    """-$38.68 overall from -$129.22 here and +$90.54 there: "334 %" and "-234 %" of the delta
    would be true and unreadable."""
    down = Highlight(INPUT, SUPPORT, Decimal("-129.22"), Decimal("3.34"), ())
    up = Highlight(
        NEW, (("team", "search"), ("user", "u-9")), Decimal("90.54"), Decimal("-2.34"), ()
    )
    text = sentence("all spend", Decimal("3000"), Decimal("2961.32"), "last week", [down, up], [])
    assert text.startswith("all spend -$38.68 (-1 %) vs last week: -$129 team=support ")
    assert text.endswith("; +$90.54 a new user u-9 (team=search)")
    assert "%" not in text.split(": ", 1)[1].replace("tokens per request", "")


def test_small_changes_are_told_in_percent_large_ones_as_factors() -> None:
    def volume(before: int, after: int) -> str:
        sides = [Measures(n, 0, 0, 0, *(Decimal(0),) * 4) for n in (before, after)]
        moved = CellChange(KEY, sides[0], sides[1], {})
        return phrase(Highlight(VOLUME, SUPPORT, Decimal(1), Decimal("0.5"), (moved,)))

    assert volume(100, 96) == "requests fell 4 %"
    assert volume(100, 118) == "requests grew 18 %"
    assert volume(100, 100) == "requests held steady"
    assert volume(100, 290) == "requests grew 2.9×"
    assert volume(300, 100) == "requests fell 3.0×"
