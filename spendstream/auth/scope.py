"""Team scoping in SQL: the one helper every query a principal runs goes through."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import HTTPException

from spendstream.auth.roles import Principal


def team_condition(
    principal: Principal, column: str = "team", parameter: str = "scope_teams"
) -> tuple[str, dict[str, Any]]:
    """``(sql, parameters)`` restricting ``column`` to the principal's teams (``1`` when the
    principal sees every team). AND it into every WHERE clause of a query the caller runs."""
    if principal.teams is None:
        return "1", {}
    return f"{column} IN {{{parameter}:Array(String)}}", {parameter: sorted(principal.teams)}


def sees_scope(principal: Principal, scope: Mapping[str, Sequence[str]]) -> bool:
    """Whether ``principal`` may see figures of a tag scope (a budget's): always for a
    principal of every team, else only when the scope's ``team`` values are all its teams
    (no globs), so the figures cannot include another team's spend."""
    if principal.teams is None:
        return True
    teams = scope.get("team", ())
    return bool(teams) and all("*" not in t and principal.sees_team(t) for t in teams)


def refuse_foreign_teams(principal: Principal, teams: Iterable[str]) -> None:
    """403 when a request names a team ``principal`` may not read (a filter or scope on
    ``team``): an empty answer would hide that the token lacks the team."""
    for team in teams:
        if not principal.sees_team(team):
            raise HTTPException(
                403,
                f"token {principal.name!r} may not read team {team!r}; its teams: "
                f"{sorted(principal.teams or [])}",
            )


def refuse_team_scoped(principal: Principal, why: str) -> None:
    """403 when ``principal`` is limited to teams but the action applies to every team
    (quota overrides, exchange rates); ``why`` says what it needs."""
    if principal.teams is not None:
        raise HTTPException(
            403,
            f"token {principal.name!r} is limited to teams {sorted(principal.teams)}; {why}",
        )
