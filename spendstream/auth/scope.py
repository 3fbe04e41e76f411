"""Team scoping in SQL: the one helper every query a principal runs goes through."""

from __future__ import annotations

from typing import Any

from spendstream.auth.roles import Principal


def team_condition(
    principal: Principal, column: str = "team", parameter: str = "scope_teams"
) -> tuple[str, dict[str, Any]]:
    """``(sql, parameters)`` restricting ``column`` to the principal's teams (``1`` when the
    principal sees every team). AND it into every WHERE clause of a query the caller runs."""
    if principal.teams is None:
        return "1", {}
    return f"{column} IN {{{parameter}:Array(String)}}", {parameter: sorted(principal.teams)}
