"""Scopes and unit maps as SQL over the ledger's columns, every value bound in ``params``.

A scope (:data:`spendstream.matching.Scope`) maps a key to patterns: a value matches exactly,
or as a glob when it contains ``*`` (``search-*``); a bare ``*`` means "the tag is set". All
keys must match; an empty scope matches all spend. :func:`scope_sql` is the SQL twin of
:func:`spendstream.matching.scope_matches`.
"""

from __future__ import annotations

from spendstream.matching import FIELD_KEYS, Scope
from spendstream.sinks.params import Params, string, strings

COLUMN_KEYS = ("team", "app", "env", "feature", "user", "provider", "model")


def column_for(key: str, params: Params) -> str:
    """The ledger column a scope key reads (a tag's key bound in ``params``)."""
    if key in COLUMN_KEYS or key in FIELD_KEYS:
        return key
    return f"tags[{string(params, key)}]"


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
    """A SQL boolean over the ledger's columns equivalent to ``scope_matches``; its values
    are bound in ``params`` (send them with the query)."""
    if not scope:
        return "1"
    return " AND ".join(
        _value_sql(column_for(key, params), patterns, params) for key, patterns in scope.items()
    )


def unit_map_sql(unit: str, column: str, params: Params) -> str:
    """SQL summing ``unit`` and its dotted variants in a per-row unit map (``unit_costs`` or
    ``unit_quantities``); the unit's names are bound in ``params``."""
    name, variants = string(params, unit), string(params, f"{unit}.")
    keep = f"(k, v) -> k = {name} OR startsWith(k, {variants})"
    return f"arraySum(mapValues(mapFilter({keep}, {column})))"
