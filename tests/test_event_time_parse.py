"""``event_time.parse_rfc3339``'s shortcut for the usual event time (issue 29: ASCII pattern without
groups, one ``fromisoformat``) decides every text as the full checks do: the same moment (and
zone object), or the same refusal with the same reason."""

from __future__ import annotations

import random

import pytest
from pydantic_core import PydanticCustomError

from spendstream.event_time import parse_rfc3339, parse_rfc3339_checked

EDGES = [
    "2026-12-07T15:16:32.194588Z",
    "2026-12-07T15:16:32Z",
    "2026-12-07t15:16:32z",
    "2026-12-07T15:16:32.1Z",
    "2026-12-07T15:16:32.123456789Z",
    "2026-12-07T15:16:32.1234567891Z",
    "2026-12-07T15:16:32+00:00",
    "2026-12-07T15:16:32-00:00",
    "2026-12-07T15:16:32.5+02:00",
    "2026-12-07T15:16:32-23:59",
    "2026-12-07T15:16:32+24:00",
    "2026-12-07T15:16:32+02:60",
    "2026-12-07T15:16:32",
    "2026-12-07 15:16:32Z",
    "2026-12-07T15:16Z",
    "2026-12-07T15:16:32.Z",
    "2026-12-07T15:16:32,5Z",
    "2026-12-07T15:16:32+0200",
    "2016-12-31T23:59:60Z",
    "2016-12-31T23:58:60Z",
    "2016-12-31T23:59:61Z",
    "2026-02-29T00:00:00Z",
    "2024-02-29T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-12-07T24:00:00Z",
    "2026-12-07T23:60:00Z",
    "1969-12-31T23:59:59.999999Z",
    "1970-01-01T00:00:00Z",
    "1970-01-01T00:00:00+00:01",
    "1970-01-01T00:59:59+01:00",
    "2099-12-31T23:59:59.999999Z",
    "2100-01-01T00:00:00Z",
    "2099-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "２０２６-12-07T15:16:32Z",  # full-width digits: \\d matches them, fromisoformat does not
    "2026-12-07T15:16:3٢Z",
    "2026-W49-1T15:16:32Z",
    "20261207T151632Z",
    "",
    " 2026-12-07T15:16:32Z",
    "2026-12-07T15:16:32Z\n",
]


def outcome(parse: object, text: str) -> tuple[object, ...]:
    try:
        moment = parse(text)  # type: ignore[operator]
    except PydanticCustomError as exc:
        return ("refused", exc.type, str(exc))
    return ("moment", moment, type(moment), moment.tzinfo, moment.utcoffset())


@pytest.mark.parametrize("text", EDGES)
def test_edges_decide_as_the_full_checks(text: str) -> None:
    assert outcome(parse_rfc3339, text) == outcome(parse_rfc3339_checked, text)


def test_mutated_times_decide_as_the_full_checks() -> None:
    """Random one- and two-character changes of usual times: shape, digits, zones, bounds."""
    rng = random.Random(29)
    alphabet = "0123456789:-+.TtZz ,W٢"
    accepted = 0
    for _ in range(20_000):
        text = list(
            rng.choice(
                ["2026-12-07T15:16:32.194588Z", "2099-12-31T23:59:59+00:00", "1970-01-01T00:00:00Z"]
            )
        )
        for _ in range(rng.randint(1, 2)):
            text[rng.randrange(len(text))] = rng.choice(alphabet)
        joined = "".join(text)
        expected = outcome(parse_rfc3339_checked, joined)
        assert outcome(parse_rfc3339, joined) == expected, joined
        accepted += expected[0] == "moment"
    assert 2_000 < accepted < 18_000  # both sides of the shortcut exercised
