"""Mutated outcome messages for the outcome fuzz test: what a broken or hostile app sends on the
outcome topic. Built like ``tests.support.fuzz`` (same ``Line`` verdicts, the shape-free mutations
reused); the mutations that depend on fields are the outcome's own."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from tests.support import fuzz
from tests.support.fuzz import (
    EITHER,
    HUGE_NUMBERS,
    INVALID,
    ODD_TEXT,
    SWAPS,
    Line,
    _dump,
)
from tests.support.traffic import TEAMS

OUTCOME_TOPIC = "spendstream.outcomes.v1"
NAMES = ("ticket_resolved", "conversion", "signup")


def base_outcome(rng: random.Random, index: int, now: datetime) -> dict[str, Any]:
    moment = now - timedelta(milliseconds=rng.randrange(0, 86_400_000))
    return {
        "schema": "outcome/v1",
        "event_id": f"{rng.getrandbits(128):032x}",
        "event_time": moment.isoformat().replace("+00:00", "Z"),
        "name": NAMES[index % len(NAMES)],
        "value": 1_000_000 + index,  # unique: id-less lines derive distinct ids
        "tags": {"team": TEAMS[index % len(TEAMS)], "feature": "fuzz"},
    }


def _swap(rng: random.Random, fields: dict[str, Any], kind: str) -> Line:
    key = rng.choice(["event_time", "name", "value", "tags", "schema"])
    return Line(_dump({**fields, key: rng.choice(SWAPS)}), EITHER, kind)


def _huge(rng: random.Random, fields: dict[str, Any], kind: str) -> Line:
    value = rng.choice([*HUGE_NUMBERS, "1e400", '"NaN"', '"-1"', "1.0000000000000000001"])
    raw = _dump({**fields, "value": 0}).replace(b'"value": 0', f'"value": {value}'.encode())
    return Line(raw, EITHER, kind)


def _unicode(rng: random.Random, fields: dict[str, Any], kind: str) -> Line:
    text = rng.choice(ODD_TEXT)
    if rng.random() < 0.5:
        changed = {**fields, "tags": {**fields["tags"], "team": text}}
    else:
        changed = {**fields, "name": text}
    return Line(_dump(changed, ascii_only=rng.random() < 0.5), EITHER, kind)


def _bad_utf8(rng: random.Random, fields: dict[str, Any], kind: str) -> Line:
    raw = _dump(fields)
    at = raw.index(b'"name": "') + 9
    return Line(raw[:at] + rng.choice([b"\xff", b"\xc3\x28", b"\x80"]) + raw[at:], INVALID, kind)


def _foreign(rng: random.Random, fields: dict[str, Any], kind: str) -> Line:
    """A usage event, a wrong schema or an unknown field on the outcome topic."""
    change = rng.choice(
        [{"schema": "usage/v1"}, {"provider": "openai"}, {"schema_version": 1}, {"model": "x"}]
    )
    return Line(_dump({**fields, **change}), INVALID, kind)


def _big(rng: random.Random, fields: dict[str, Any], kind: str) -> Line:
    filler = rng.choice(["\u0001", '"', "x"]) * rng.choice([20_000, 100_000])
    return Line(_dump({**fields, "name": filler}), INVALID, kind)


# The usage mutations that do not depend on the event's fields, and the outcome's own.
SHAPE_FREE = ("none", "id-less", "truncate", "flip", "nest", "time")
MUTATORS: dict[str, Callable[[random.Random, dict[str, Any], str], Line]] = {
    **{name: fuzz.MUTATORS[name] for name in SHAPE_FREE},
    "swap": _swap,
    "huge": _huge,
    "unicode": _unicode,
    "bad-utf8": _bad_utf8,
    "foreign": _foreign,
}
MUTATIONS = ["none"] * 5 + ["id-less"] * 2 + [m for m in MUTATORS if m not in ("none", "id-less")]


def outcome_line(rng: random.Random, index: int, number: int, now: datetime) -> Line:
    """An outcome line for ``tests.support.fuzz.generate_messages(..., make_line=...)``."""
    fields = base_outcome(rng, index, now)
    kind = "big" if number % 250 == 7 else rng.choice(MUTATIONS)
    return _big(rng, fields, kind) if kind == "big" else MUTATORS[kind](rng, fields, kind)
