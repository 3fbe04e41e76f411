"""Tag-value matching shared by budgets and quotas (worker side) and admission (the SDK).

A pattern matches exactly, or as a glob when it contains ``*`` (``search-*``); a bare ``*``
means "the tag is set". A scope maps keys to tuples of patterns: every key must match one of its
patterns. Pure Python, no imports beyond ``re``, so the SDK can use it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

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
