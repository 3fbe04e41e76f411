"""One sentence a person can paste into a channel, from an explanation's highlights.

``support +$412 (+230 %) vs the same 24 h last week: 64 % feature=reply-draft on
claude-sonnet-4-5, where input tokens per request grew 2.9×; 18 % a new user u-77``
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from spendstream.explain.cells import ZERO, Measures
from spendstream.explain.decompose import (
    BATCH,
    CACHE,
    INPUT,
    MIX,
    NEW,
    OUTPUT,
    PRICE,
    RESPONSE_CACHE,
    UNITS,
    VANISHED,
    VOLUME,
    CellChange,
)
from spendstream.explain.report import Highlight, Path

WEEK = timedelta(days=7)


def money(amount: Decimal, signed: bool = True) -> str:
    """``+$412``, ``-$3.27``, ``+$0.0042``: whole dollars from $100, cents from $1."""
    size = abs(amount)
    if size >= 100:
        text = f"{size.quantize(Decimal(1), ROUND_HALF_EVEN):,}"
    elif size >= 1 or size == 0:
        text = f"{size.quantize(Decimal('0.01'), ROUND_HALF_EVEN)}"
    else:
        text = f"{size:.2g}" if size >= Decimal("1e-6") else format(size.normalize(), "f")
    sign = ("-" if amount < 0 else "+") if signed else ("-" if amount < 0 else "")
    return f"{sign}${text}"


def percent(share: Decimal) -> str:
    return f"{(share * 100).quantize(Decimal(1), ROUND_HALF_EVEN)}"


def duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds % 86400 == 0 and seconds != 86400:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min"


def baseline_label(period: tuple[datetime, datetime], baseline: tuple[datetime, datetime]) -> str:
    span = period[1] - period[0]
    if baseline[1] - baseline[0] == span:
        for weeks, name in ((1, "last week"), (2, "two weeks before")):
            if period[0] - baseline[0] == weeks * WEEK:
                return f"the same {duration(span)} {name}"
        if baseline[1] == period[0]:
            return f"the {duration(span)} before"
    return f"{baseline[0].isoformat()} – {baseline[1].isoformat()}"


def _sum(changes: Sequence[CellChange], side: str, field: str) -> Decimal:
    total = ZERO
    for change in changes:
        measures: Measures | None = getattr(change, side)
        if measures is not None:
            total += Decimal(getattr(measures, field))
    return total


def _factor(before: Decimal, after: Decimal) -> str:
    """``grew 2.9×``, ``fell 3.0×``; a change under 2× in percent (``fell 4 %``, where "fell
    1.0×" would say nothing)."""
    if not before:
        return "appeared"
    ratio = after / before
    verb = "grew" if ratio >= 1 else "fell"
    if Decimal("0.5") < ratio < 2:
        moved = percent(abs(ratio - 1))
        return "held steady" if moved == "0" else f"{verb} {moved} %"
    shown = ratio if ratio >= 1 else before / after if after else None
    return f"{verb} {shown.quantize(Decimal('0.1'))}×" if shown is not None else f"{verb} to 0"


def _per_request(changes: Sequence[CellChange], field: str) -> str:
    """``field`` per paid request (tokens of response-cached calls are not counted)."""
    r0, r1 = (
        _sum(changes, side, "requests") - _sum(changes, side, "cached_requests")
        for side in ("before", "after")
    )
    v0, v1 = _sum(changes, "before", field), _sum(changes, "after", field)
    return _factor(v0 / r0 if r0 else ZERO, v1 / r1 if r1 else ZERO)


def _share(changes: Sequence[CellChange], part: str, whole: str) -> str:
    """``went from 0 % to 50 %``: ``part`` as a share of ``whole`` in each period."""
    shares = [
        _sum(changes, side, part) / _sum(changes, side, whole)
        if _sum(changes, side, whole)
        else ZERO
        for side in ("before", "after")
    ]
    return f"went from {percent(shares[0])} % to {percent(shares[1])} %"


def _batch_share(changes: Sequence[CellChange], side: str) -> Decimal:
    total = _sum(changes, side, "requests")
    batched = sum(
        (Decimal(getattr(c, side).requests) for c in changes if c.key[-1] and getattr(c, side)),
        ZERO,
    )
    return batched / total if total else ZERO


def _top_model(changes: Sequence[CellChange]) -> str:
    gains: dict[str, Decimal] = {}
    for change in changes:
        gains[str(change.key[6])] = gains.get(str(change.key[6]), ZERO) + change.parts.get(
            MIX, ZERO
        )
    return max(gains.items(), key=lambda item: (item[1], item[0]))[0] if gains else ""


def phrase(highlight: Highlight) -> str:
    """What moved, in words, measured where the highlight lives."""
    changes, driver = highlight.changes, highlight.driver
    if driver == VOLUME:
        return "requests " + _factor(
            _sum(changes, "before", "requests"), _sum(changes, "after", "requests")
        )
    if driver == INPUT:
        return "input tokens per request " + _per_request(changes, "input_tokens")
    if driver == OUTPUT:
        return "output tokens per request " + _per_request(changes, "output_tokens")
    if driver == CACHE:
        return "cache-read share of input " + _share(changes, "cache_read_tokens", "input_tokens")
    if driver == RESPONSE_CACHE:
        return "share of requests answered from the app's response cache " + _share(
            changes, "cached_requests", "requests"
        )
    if driver == BATCH:
        b0, b1 = _batch_share(changes, "before"), _batch_share(changes, "after")
        return f"batch share went from {percent(b0)} % to {percent(b1)} %"
    if driver == MIX:
        return (
            f"requests moved {'to' if highlight.amount > 0 else 'away from'} {_top_model(changes)}"
        )
    if driver == PRICE:
        return f"unit prices {'rose' if highlight.amount > 0 else 'fell'}"
    if driver == UNITS:
        return f"non-token units per request {'grew' if highlight.amount > 0 else 'fell'}"
    return ""


def place(path: Path, scope_keys: Sequence[str]) -> str:
    shown = [(k, v) for k, v in path if k not in scope_keys]
    words = [f"{k}={v or '(none)'}" for k, v in shown if k != "model"]
    words += [f"on {v}" for k, v in shown if k == "model"]
    return " ".join(words)


def item(highlight: Highlight, scope_keys: Sequence[str], in_dollars: bool = False) -> str:
    share = money(highlight.amount) if in_dollars else f"{percent(highlight.share or ZERO)} %"
    if highlight.driver in (NEW, VANISHED):
        kind, value = highlight.path[-1] if highlight.path else ("traffic", "")
        adjective = "new" if highlight.driver == NEW else "vanished"
        where = place(highlight.path[:-1], scope_keys)
        return f"{share} a {adjective} {kind} {value}" + (f" ({where})" if where else "")
    where, what = place(highlight.path, scope_keys), phrase(highlight)
    return f"{share} {where}, where {what}" if where else f"{share} {what}"


def sentence(
    label: str,
    before: Decimal,
    after: Decimal,
    baseline: str,
    found: Sequence[Highlight],
    scope_keys: Sequence[str],
) -> str:
    delta = after - before
    if before:
        change = f"{'+' if delta >= 0 else ''}{percent(delta / before)} %"
    else:
        change = "new spend" if after else "no spend"
    head = f"{label} {money(delta)} ({change}) vs {baseline}"
    if not found:
        return head + (": no single driver stands out" if delta else "")
    items = merged(found)
    # Shares of the delta read well while each is a part of it; when movements offset each
    # other (one +$129, another -$160, a delta of -$39) they run past 100 % or turn negative,
    # and dollars say it plainly.
    in_dollars = any(h.share is None or not ZERO <= h.share <= 1 for h in items)
    return head + ": " + "; ".join(item(h, scope_keys, in_dollars) for h in items)


def merged(found: Sequence[Highlight]) -> list[Highlight]:
    """One item per new or vanished thing: a new user seen in two places (env=prod and
    env=staging) is one "new user" with the places they share, not two items naming them twice.
    Largest first, as found."""
    groups: dict[tuple[str, object], list[Highlight]] = {}
    for highlight in found:
        thing = (
            highlight.path[-1]
            if highlight.driver in (NEW, VANISHED) and highlight.path
            else id(highlight)
        )
        groups.setdefault((highlight.driver, thing), []).append(highlight)
    items = [group[0] if len(group) == 1 else _joined(group) for group in groups.values()]
    return sorted(items, key=lambda h: abs(h.amount), reverse=True)


def _joined(group: list[Highlight]) -> Highlight:
    first = group[0]
    shared = [pair for pair in first.path[:-1] if all(pair in h.path[:-1] for h in group[1:])]
    shares = [h.share for h in group]
    return replace(
        first,
        path=(*shared, first.path[-1]),
        amount=sum((h.amount for h in group), start=ZERO),
        share=None if None in shares else sum((s for s in shares if s is not None), start=ZERO),
        changes=tuple(change for h in group for change in h.changes),
    )
