"""Empty tag values as people read them: calls without a quota's grouped tag share one key,
``user=``, shown as ``user=(none)``; scopes and anomaly groups name an empty value too."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal

from spendstream.anomalies.episodes import episode_id, group_label, group_text
from spendstream.decisions import group_key, key_text, pairs_text
from spendstream.quotas.config import QuotaConfig
from spendstream.quotas.engine import judge

DAY = (datetime(2026, 12, 7, tzinfo=UTC), datetime(2026, 12, 8, tzinfo=UTC))


def test_an_empty_value_reads_none_and_a_set_one_is_kept() -> None:
    assert key_text("user=", ["user"]) == "user=(none)"
    assert key_text("user=alice", ["user"]) == "user=alice"
    two = ["user", "app"]
    assert key_text("user=,app=bot", two) == "user=(none),app=bot"
    assert key_text(group_key(("user", "app"), {"app": "bot"}), two) == "user=(none),app=bot"
    assert key_text("", []) == ""


def test_values_with_commas_and_equals_signs_are_cut_at_the_names() -> None:
    # Values are free text: the review's cases, which splitting on "," and "=" got wrong.
    assert key_text(group_key(("user",), ["smith, john"]), ["user"]) == "user=smith, john"
    assert key_text("user=YWJj=", ["user"]) == "user=YWJj="
    assert key_text("team=a,b=,user=", ["team", "user"]) == "team=a,b=,user=(none)"
    assert key_text("team=,user=x", ["team", "user"]) == "team=(none),user=x"
    assert key_text("other=1", ["user"]) == "other=1"  # not of the quota's shape: as it is


def test_a_decision_for_calls_without_a_user_says_so() -> None:
    quota = QuotaConfig(name="per-user", group_by=["user"], limit=Decimal(5))
    at = datetime(2026, 12, 7, 12, tzinfo=UTC)
    blocked = judge(quota, "user=", Decimal(6), DAY, at, {})
    assert not blocked.allowed and blocked.key == "user="  # stored as the key admission uses
    assert blocked.reason.startswith("quota per-user for user=(none) blocked: $6.00 of $5.00")
    allowed = judge(quota, "user=alice", Decimal(1), DAY, at, {})
    assert allowed.reason == "quota per-user for user=alice: $1.00 of $5.00 used"


def test_scopes_and_groups_name_an_empty_value_for_people_only() -> None:
    assert pairs_text([("team", "platform"), ("app", "")]) == "team=platform, app=(none)"
    group = (("team", "platform"), ("app", ""))
    assert group_text(group) == "team=platform, app=(none)"  # notifications
    assert group_label(group) == "team=platform, app="  # the API: values as stored
    assert group_text(()) == group_label(()) == "all"


def test_an_episode_id_is_the_one_earlier_releases_gave_it() -> None:
    # Hashed over the raw pairs ("app=", not "app=(none)"): an open episode keeps its id.
    started = datetime(2026, 12, 7, 9, tzinfo=UTC)
    raw = f"spikes|team=platform, app=|{started.isoformat()}"
    expected = hashlib.sha256(raw.encode()).hexdigest()[:32]
    assert episode_id("spikes", (("team", "platform"), ("app", "")), started) == expected
