"""Budget/alert configuration: validation errors name file, key, value and fix; scopes, periods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spendstream.alerts.config import load_alerting
from spendstream.cli.alerts import budgets_app
from spendstream.config import ConfigError, load_settings
from spendstream.durations import parse_duration
from spendstream.events import UsageEvent
from spendstream.matching import Scope, scope_matches
from spendstream.periods import period_bounds
from spendstream.sinks.audits import render_sql
from spendstream.sinks.scopes import scope_sql
from tests.test_alerts_engine import run_cli

GOOD = """
[alerts]
group_wait = "3s"
[alerts.channels]
oncall = "json://127.0.0.1:9/hook"

[[budgets]]
name = "search-prod"
scope = { team = "search", env = ["prod", "prod-*"] }
period = "week"
timezone = "Europe/Paris"
limit = "5000"
thresholds = [100, 50, 80, 50]
channels = ["oncall"]
owner = "search-oncall"
reminder = "4h"
spike = true
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "budgets.toml"
    path.write_text(text)
    return path


def test_valid_file_loads_with_normalised_values(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    alerting = load_alerting(load_settings(path), path)
    (budget,) = alerting.budgets
    assert budget.limit == Decimal("5000") and budget.thresholds == [50, 80, 100]
    assert budget.scope_filters == {"env": ("prod", "prod-*"), "team": ("search",)}
    assert budget.reminder == timedelta(hours=4)
    assert budget.spike_rule(alerting.alerts.spike) == alerting.alerts.spike
    assert alerting.alerts.group_wait == timedelta(seconds=3)


def test_invalid_budget_names_file_key_value_and_fix(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD
        + """
[[budgets]]
name = "ok-too"
limit = 10

[[budgets]]
name = "broken"
limit = "-3"
thresholds = [50, "eighty"]
period = "fortnight"
channels = ["pager"]
colour = "red"
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_alerting(load_settings(path), path)
    message = str(caught.value)
    assert f"invalid budgets/alerts configuration in {path}" in message
    assert "budgets[2].thresholds[1] = 'eighty'" in message
    assert "fix: percentages of the limit between 1 and 1000, e.g. thresholds = [50, 80, 100]" in (
        message
    )
    assert "budgets[2].limit = '-3'" in message and "fix: a positive USD amount" in message
    assert "budgets[2].period = 'fortnight'" in message and 'one of "day", "week", "month"' in (
        message
    )
    assert "budgets[2].colour: unknown key" in message
    assert "budgets[0]" not in message and "budgets[1]" not in message


def test_unknown_channel_and_duplicate_names_are_reported(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + GOOD.split("[alerts.channels]")[1].split("\n", 2)[2])
    text = path.read_text().replace('channels = ["oncall"]', 'channels = ["pager"]', 1)
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_alerting(load_settings(path), path)
    message = str(caught.value)
    assert "budgets[0].channels = ['pager']: 'pager' is not defined" in message
    assert "fix: add it under [alerts.channels] (defined: oncall)" in message
    assert "budgets[1].name = 'search-prod': duplicate" in message


def test_bad_channel_url_and_cli_exit_code(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("json://127.0.0.1:9/hook", "nosuch://x"))
    result = run_cli(budgets_app, "list", "-c", str(path))
    output = " ".join(result.output.split())  # the error console wraps long lines
    assert result.exit_code == 2
    assert f"invalid budgets/alerts configuration in {path}" in output
    # The URL is shown redacted: channel URLs carry tokens and passwords.
    assert "alerts.channels: Value error, channel 'oncall': 'nosuch://***' is not a valid" in output
    assert "is not defined" not in output
    good = write(tmp_path, GOOD)
    listed = run_cli(budgets_app, "list", "-c", str(good), "-f", "json")
    assert listed.exit_code == 0 and '"scope": "env=prod|prod-*, team=search"' in listed.output


def test_scope_matching_equality_lists_wildcards_and_other_tags() -> None:
    scope = {"team": ("search",), "env": ("prod", "eu-*"), "region": ("*",)}

    def event(**tags: str) -> UsageEvent:
        return UsageEvent(provider="openai", model="gpt-4o-mini", tags=tags)

    assert scope_matches(scope, event(team="search", env="eu-west", region="x"))
    assert scope_matches(scope, event(team="search", env="prod", region="y"))
    assert not scope_matches(scope, event(team="search", env="staging", region="x"))
    assert not scope_matches(scope, event(team="search", env="prod"))
    assert not scope_matches(scope, event(team="ads", env="prod", region="x"))
    assert scope_matches({"model": ("gpt-4o*",)}, event())

    def rendered(scope: Scope) -> str:  # the values are bound; as literals, the text is the same
        params: dict[str, Any] = {}
        return render_sql(scope_sql(scope, params), params)

    assert rendered(scope) == (
        "team = 'search' AND (env = 'prod' OR env LIKE 'eu-%') AND tags['region'] != ''"
    )
    assert rendered({"app": ("it's_100%",)}) == "app = 'it\\'s_100%'"
    assert rendered({"app": ("a_*",)}) == "app LIKE 'a\\\\_%'"
    params: dict[str, Any] = {}
    assert scope_sql({"app": ("it's",), "k'": ("x",)}, params) == (
        "app = {v0:String} AND tags[{v1:String}] = {v2:String}"
    )
    assert params == {"v0": "it's", "v1": "k'", "v2": "x"}


def test_periods_follow_the_time_zone_and_calendar() -> None:
    now = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)  # a Sunday; Paris switched to CEST at 01:00
    day = period_bounds("day", "Europe/Paris", now)
    assert day == (datetime(2026, 3, 28, 23, tzinfo=UTC), datetime(2026, 3, 29, 22, tzinfo=UTC))
    week = period_bounds("week", "UTC", now)
    assert week == (datetime(2026, 3, 23, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC))
    december = period_bounds("month", "UTC", datetime(2026, 12, 31, 23, tzinfo=UTC))
    assert december == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("1.5h") == timedelta(minutes=90)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("two hours")
