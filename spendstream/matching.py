"""Tag-value matching shared by budgets and quotas (worker side) and admission (the SDK).

A pattern matches exactly, or as a glob when it contains ``*`` (``search-*``); a bare ``*``
means "the tag is set". A scope maps keys to tuples of patterns: every key must match one of its
patterns. Pure Python, no imports beyond ``re``, so the SDK can use it.

Scope keys are the ledger's columns ``team``, ``app``, ``env``, ``feature``, ``user``,
``provider``, ``model`` or any other event tag (``tags[key]``). The same scope in SQL is
:func:`spendstream.sinks.scopes.scope_sql`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spendstream.events import UsageRecord

Scope = Mapping[str, tuple[str, ...]]


def value_matches(actual: str, pattern: str) -> bool:
    if pattern == "*":
        return actual != ""
    if "*" in pattern:
        regex = ".*".join(re.escape(part) for part in pattern.split("*"))
        return re.fullmatch(regex, actual, flags=re.DOTALL) is not None
    return actual == pattern


def values_match(scope: Scope, values: Mapping[str, str]) -> bool:
    """True when tag ``values`` (scope key → value) fall inside ``scope``."""
    return all(
        any(value_matches(values.get(key, ""), pattern) for pattern in patterns)
        for key, patterns in scope.items()
    )


# Agent fields (migration 1100) scopes and quotas can also name: read from the event's own
# fields, and from the ledger's columns of the same names (sinks.scopes.column_for).
FIELD_KEYS = ("run_id", "agent", "customer", "session_id", "trace_id", "parent", "tool")


def event_value(event: UsageRecord, key: str) -> str:
    """The value a scope key reads from an event (``""`` when the tag is absent)."""
    if key == "provider":
        return event.provider
    if key == "model":
        return event.model
    if key in FIELD_KEYS:
        return getattr(event, key) or ""
    return event.tag(key)


def values_reader(keys: Sequence[str]) -> Callable[[UsageRecord], tuple[str, ...]]:
    """``event -> tuple(event_value(event, key) for key in keys)``, cheaper per event: the batch
    observers read every event of a batch. Keys that are all tags (the usual scopes) are read
    with one C-level ``map`` over the event's tags."""
    names = tuple(keys)
    if any(key in ("provider", "model") or key in FIELD_KEYS for key in names):
        return lambda event: tuple([event_value(event, key) for key in names])
    blanks = ("",) * len(names)
    return lambda event: tuple(map(event.tags.get, names, blanks))


def scope_matches(scope: Scope, event: UsageRecord) -> bool:
    """True when ``event`` falls inside ``scope``."""
    return values_match(scope, {key: event_value(event, key) for key in scope})


def scope_text(scope: Scope) -> str:
    """``team=search, env=prod|staging`` (``all spend`` for an empty scope)."""
    if not scope:
        return "all spend"
    return ", ".join(f"{key}={'|'.join(patterns)}" for key, patterns in scope.items())
