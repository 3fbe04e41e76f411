"""The pasted sentence names each new or vanished thing once: a new user seen in two places
(env=prod and env=staging) is one item with the places they share and the shares added
(the demo's sentence once read "17 % a new user user-runaway (… env=prod …); … 6 % a new user
user-runaway (… env=staging …)")."""

from __future__ import annotations

from decimal import Decimal

from spendstream.explain.decompose import INPUT, NEW
from spendstream.explain.report import Highlight
from spendstream.explain.sentence import merged, sentence

SUPPORT = (("team", "support"), ("feature", "reply-draft"))


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
