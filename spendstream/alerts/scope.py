"""Budget scopes: tag filters matched against events (in Python) and the ledger (in SQL).

A scope maps a key to a value or a list of values. Keys are the ledger's columns ``team``,
``app``, ``env``, ``feature``, ``user``, ``provider``, ``model`` or any other event tag (read
from ``tags[key]``). A value matches exactly, or as a glob when it contains ``*`` (``search-*``);
a bare ``*`` means "the tag is set". A list matches any of its values. All keys must match.
An empty scope matches all spend.
"""

from __future__ import annotations

from spendstream.events import UsageEvent
from spendstream.matching import Scope, value_matches, values_match
from spendstream.sinks.params import Params, string, strings

COLUMN_KEYS = ("team", "app", "env", "feature", "user", "provider", "model")


def column_for(key: str, params: Params) -> str:
    """The ledger column a scope key reads (a tag's key bound in ``params``)."""
    return key if key in COLUMN_KEYS else f"tags[{string(params, key)}]"


def event_value(event: UsageEvent, key: str) -> str:
    """The value a scope key reads from an event (``""`` when the tag is absent)."""
    if key == "provider":
        return event.provider
    if key == "model":
        return event.model
    return event.tag(key)


def scope_matches(scope: Scope, event: UsageEvent) -> bool:
    """True when ``event`` falls inside ``scope``."""
    return values_match(scope, {key: event_value(event, key) for key in scope})


__all__ = [
    "COLUMN_KEYS",
    "Scope",
    "column_for",
    "event_value",
    "scope_matches",
    "scope_sql",
    "scope_text",
    "value_matches",
    "values_match",
]


def _like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def _value_sql(column: str, patterns: tuple[str, ...], params: Params) -> str:
    exact = [p for p in patterns if "*" not in p]
    clauses = []
    if exact:
        clauses.append(
            f"{column} = {string(params, exact[0])}"
            if len(exact) == 1
            else f"{column} IN {strings(params, exact)}"
        )
    for pattern in patterns:
        if pattern == "*":
            clauses.append(f"{column} != ''")
        elif "*" in pattern:
            clauses.append(f"{column} LIKE {string(params, _like(pattern))}")
    return clauses[0] if len(clauses) == 1 else "(" + " OR ".join(clauses) + ")"


def scope_sql(scope: Scope, params: Params) -> str:
    """A SQL boolean over the ledger's columns equivalent to :func:`scope_matches`; its values
    are bound in ``params`` (send them with the query)."""
    if not scope:
        return "1"
    return " AND ".join(
        _value_sql(column_for(key, params), patterns, params) for key, patterns in scope.items()
    )


def scope_text(scope: Scope) -> str:
    """``team=search, env=prod|staging`` (``all spend`` for an empty scope)."""
    if not scope:
        return "all spend"
    return ", ".join(f"{key}={'|'.join(patterns)}" for key, patterns in scope.items())
