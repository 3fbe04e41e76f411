"""Budget scopes: tag filters matched against events (in Python) and the ledger (in SQL).

A scope maps a key to a value or a list of values. Keys are the ledger's columns ``team``,
``app``, ``env``, ``feature``, ``user``, ``provider``, ``model`` or any other event tag (read
from ``tags[key]``). A value matches exactly, or as a glob when it contains ``*`` (``search-*``);
a bare ``*`` means "the tag is set". A list matches any of its values. All keys must match.
An empty scope matches all spend.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from spendstream.events import UsageEvent

COLUMN_KEYS = ("team", "app", "env", "feature", "user", "provider", "model")
Scope = Mapping[str, tuple[str, ...]]


def sql_string(value: str) -> str:
    """A ClickHouse string literal (backslash and quote escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def column_for(key: str) -> str:
    return key if key in COLUMN_KEYS else f"tags[{sql_string(key)}]"


def event_value(event: UsageEvent, key: str) -> str:
    """The value a scope key reads from an event (``""`` when the tag is absent)."""
    if key == "provider":
        return event.provider
    if key == "model":
        return event.model
    return event.tag(key)


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


def scope_matches(scope: Scope, event: UsageEvent) -> bool:
    """True when ``event`` falls inside ``scope``."""
    return values_match(scope, {key: event_value(event, key) for key in scope})


def _like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def _value_sql(column: str, patterns: tuple[str, ...]) -> str:
    exact = [p for p in patterns if "*" not in p]
    clauses = []
    if exact:
        clauses.append(
            f"{column} = {sql_string(exact[0])}"
            if len(exact) == 1
            else f"{column} IN ({', '.join(sql_string(p) for p in exact)})"
        )
    for pattern in patterns:
        if pattern == "*":
            clauses.append(f"{column} != ''")
        elif "*" in pattern:
            clauses.append(f"{column} LIKE {sql_string(_like(pattern))}")
    return clauses[0] if len(clauses) == 1 else "(" + " OR ".join(clauses) + ")"


def scope_sql(scope: Scope) -> str:
    """A SQL boolean over the ledger's columns equivalent to :func:`scope_matches`."""
    if not scope:
        return "1"
    return " AND ".join(_value_sql(column_for(key), patterns) for key, patterns in scope.items())


def scope_text(scope: Scope) -> str:
    """``team=search, env=prod|staging`` (``all spend`` for an empty scope)."""
    if not scope:
        return "all spend"
    return ", ".join(f"{key}={'|'.join(patterns)}" for key, patterns in scope.items())
