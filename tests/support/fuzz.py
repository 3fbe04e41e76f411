"""Mutated usage messages for the poison fuzz test: what a broken or hostile producer sends.

Each generated line knows whether it is certainly valid (unmutated, or only its event_id
dropped) or certainly invalid (truncated JSON); other mutations may go either way, and the
test accounts for those by where they ended up (ledger or dead-letter topic), not by guessing.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.traffic import LIST_PRICES, TEAMS

VALID, INVALID, EITHER = "valid", "invalid", "either"

# Outside 1970-01-01T00:00:00Z .. 2100-01-01T00:00:00Z (the first two overflowed in UTC).
OUT_OF_RANGE_TIMES = [
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-00:01",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "1899-12-31T23:59:59Z",
    "2300-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999Z",
    "2100-01-01T00:00:00Z",
]
EXTREME_TIMES: list[Any] = [
    *OUT_OF_RANGE_TIMES,
    "2016-12-31T23:59:60Z",
    "2026-11-30T10:00:00+23:59",
    "2026-02-29T00:00:00Z",
    "2026-11-30T10:00:00.123456789Z",
    "1970-01-01T00:00:00Z",
    1764500000,
    1764500000000,
    "10",
    "",
    None,
]
ODD_TEXT = [
    "\u202egnp.exe",
    "\u200b\u200d",
    "\U0001f4b8" * 40,
    "nul\u0000byte",
    "<script>alert(1)</script>",
    "'; DROP TABLE ledger; --",
    "e\u0301",
    "\ufeff",
    "x" * 300,
]
HUGE_NUMBERS: list[Any] = [10**30, 2**63, -1, 1e308, -0.0, 1e-320, 10**12, 10**12 + 1]
SWAPS: list[Any] = ["10", 10, 1.5, True, False, None, [], {}, [1], {"a": 1}]


@dataclass
class Line:
    payload: bytes
    expect: str  # VALID, INVALID or EITHER
    kind: str


def base_event(rng: random.Random, index: int, now: datetime) -> dict[str, Any]:
    provider, model = list(LIST_PRICES)[index % len(LIST_PRICES)]
    moment = now - timedelta(milliseconds=rng.randrange(0, 86_400_000))
    return {
        "schema_version": 1,
        "event_id": f"{rng.getrandbits(128):032x}",
        "event_time": moment.isoformat().replace("+00:00", "Z"),
        "provider": provider,
        "model": model,
        "input_tokens": 1_000_000 + index,  # unique: id-less lines derive distinct ids
        "output_tokens": rng.randrange(0, 3_000),
        "tags": {"team": TEAMS[index % len(TEAMS)], "env": "prod"},
    }


def _dump(fields: Any, ascii_only: bool = False) -> bytes:
    return json.dumps(fields, ensure_ascii=ascii_only).encode()


def mutate(rng: random.Random, fields: dict[str, Any]) -> Line:
    kind = rng.choice(MUTATIONS)
    return MUTATORS[kind](rng, fields, kind)


def _none(rng: random.Random, fields: dict[str, Any], kind: str) -> Line:
    return Line(_dump(fields), VALID, kind)


def _id_less(rng: random.Random, fields: dict[str, Any], kind: str) -> Line:
    return Line(_dump({k: v for k, v in fields.items() if k != "event_id"}), VALID, kind)


def _truncate(rng: random.Random, fields: dict[str, Any], kind: str) -> Line:
    raw = _dump(fields)
    return Line(raw[: rng.randrange(0, len(raw) - 1)], INVALID, kind)


def _flip(rng: random.Random, fields: dict[str, Any], kind: str) -> Line:
    raw = bytearray(_dump(fields))
    for _ in range(rng.randrange(1, 4)):
        raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
    return Line(bytes(raw), EITHER, kind)


def _swap(rng: random.Random, fields: dict[str, Any], kind: str) -> Line:
    # Not event_id: a swapped-in "10" would be a valid id shared by several lines.
    keys = [key for key in fields if key != "event_id"]
    key = rng.choice([*keys, "batch", "latency_ms", "request_count", "provider_cost_usd"])
    return Line(_dump({**fields, key: rng.choice(SWAPS)}), EITHER, kind)


def _huge(rng: random.Random, fields: dict[str, Any], kind: str) -> Line:
    key = rng.choice(["input_tokens", "output_tokens", "latency_ms", "provider_cost_usd"])
    value = rng.choice(HUGE_NUMBERS)
    raw = _dump({**fields, key: 0}).replace(f'"{key}": 0'.encode(), f'"{key}": {value}'.encode())
    return Line(raw, EITHER, kind)


def _unicode(rng: random.Random, fields: dict[str, Any], kind: str) -> Line:
    key = rng.choice(["model", "provider", "team", "note", "event_id"])
    text = rng.choice(ODD_TEXT)
    if key in ("team", "note"):
        changed = {**fields, "tags": {**fields["tags"], key: text}}
    else:
        changed = {**fields, key: text}
    raw = _dump(changed, ascii_only=rng.random() < 0.5)
    if rng.random() < 0.2:  # a lone surrogate escape
        raw = raw.replace(b'"provider": "', b'"provider": "\\ud800', 1)
    return Line(raw, EITHER, kind)


def _bad_utf8(rng: random.Random, fields: dict[str, Any], kind: str) -> Line:
    raw = _dump(fields)
    at = raw.index(b'"model": "') + 10
    bad = rng.choice([b"\xff", b"\xc3\x28", b"\x80"])
    return Line(raw[:at] + bad + raw[at:], INVALID, kind)


def _nest(rng: random.Random, fields: dict[str, Any], kind: str) -> Line:
    depth = rng.choice([3, 50, 300, 2_000])
    nested = "[" * depth + "]" * depth
    raw = _dump({**fields, "tags": {}}).replace(b'"tags": {}', f'"tags": {nested}'.encode())
    return Line(raw, INVALID, kind)


def _time(rng: random.Random, fields: dict[str, Any], kind: str) -> Line:
    return Line(_dump({**fields, "event_time": rng.choice(EXTREME_TIMES)}), EITHER, kind)


def _big(rng: random.Random, fields: dict[str, Any], kind: str) -> Line:
    filler = rng.choice(["\u0001", '"', "x"]) * rng.choice([20_000, 100_000])
    return Line(_dump({**fields, "model": filler}), INVALID, kind)


MUTATORS: dict[str, Callable[[random.Random, dict[str, Any], str], Line]] = {
    "none": _none,
    "id-less": _id_less,
    "truncate": _truncate,
    "flip": _flip,
    "swap": _swap,
    "huge": _huge,
    "unicode": _unicode,
    "bad-utf8": _bad_utf8,
    "nest": _nest,
    "time": _time,
    "big": _big,
}
# Weighted: about 40 % untouched or id-less, the rest spread over the mutations.
MUTATIONS = (
    ["none"] * 5
    + ["id-less"] * 2
    + [name for name in MUTATORS if name not in ("none", "id-less", "big")]
)


# (rng, line index, message number, now) -> a line: what one topic's producer might send
LineMaker = Callable[[random.Random, int, int, datetime], Line]


def usage_line(rng: random.Random, index: int, number: int, now: datetime) -> Line:
    fields = base_event(rng, index, now)
    return _big(rng, fields, "big") if number % 500 == 7 else mutate(rng, fields)


def generate_messages(
    count: int, seed: int, now: datetime | None = None, make_line: LineMaker = usage_line
) -> list[tuple[list[Line], bool]]:
    """``count`` messages: ``(lines, ndjson)``; about one in five packs 2–8 lines."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    messages: list[tuple[list[Line], bool]] = []
    index = 0
    for number in range(count):
        packed = rng.random() < 0.2
        lines = []
        for _ in range(rng.randrange(2, 9) if packed else 1):
            line = make_line(rng, index, number, now)
            index += 1
            if packed:  # a flipped byte must not split the line (the test maps lines by index)
                line.payload = line.payload.replace(b"\n", b" ")
            lines.append(line)
        messages.append((lines, packed))
    return messages
