"""The anomaly core on hand-computed cases: median/MAD baselines, the spread's floor, the
minimum dollar delta, cold start, DST-aware weeks, episode steps and the inbox state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spendstream.alerts.config import load_alerting
from spendstream.anomalies import load_anomalies
from spendstream.anomalies.baseline import baseline_of, judge, mad, median, reference_hours
from spendstream.anomalies.config import AnomalyRule
from spendstream.anomalies.episodes import Action, Episode, inbox_status, step
from spendstream.config import ConfigError, load_settings

D = Decimal
AT = datetime(2026, 11, 30, 10, tzinfo=UTC)  # a Monday, 10:00 UTC
WEEK, DAY, HOUR = timedelta(weeks=1), timedelta(days=1), timedelta(hours=1)
LONG_AGO = AT - 10 * WEEK


def rule(**fields: Any) -> AnomalyRule:
    return AnomalyRule.model_validate({"name": "r", **fields})


def weekly(*values: str) -> dict[datetime, Decimal]:
    """The same hour 1, 2, 3, ... weeks before AT."""
    return {AT - WEEK * (k + 1): D(v) for k, v in enumerate(values)}


def test_median_and_mad_by_hand() -> None:
    values = [D(10), D(12), D(11), D(30)]
    assert median(values) == D("11.5")  # (11 + 12) / 2
    assert mad(values, D("11.5")) == D(1)  # deviations 1.5 .5 .5 18.5 -> (0.5 + 1.5) / 2
    assert median([D(3), D(1), D(2)]) == D(2)
    assert median([]) == D(0)


def test_the_seasonal_baseline_and_its_threshold_by_hand() -> None:
    r = rule(min_delta_usd="5")  # sensitivity 4, min_spread_pct 10 (defaults)
    base = baseline_of(weekly("10", "12", "11", "30"), AT, r, LONG_AGO)
    assert base.method == "seasonal"
    assert base.points == (D(10), D(12), D(11), D(30))  # the outlier week does not move it far
    assert base.center == D("11.5")
    assert base.spread == D("1.4826")  # 1.4826 x MAD 1 beats the floor 1.15
    below, above = judge(D("17.4304"), base, r, AT), judge(D("17.4305"), base, r, AT)
    assert below.threshold == D("17.4304")  # 11.5 + 4 x 1.4826
    assert not below.anomalous
    assert above.anomalous
    assert above.delta == D("5.9305")


def test_a_perfectly_regular_history_uses_the_spread_floor() -> None:
    r = rule(min_delta_usd="1")
    base = baseline_of(weekly("10", "10", "10", "10"), AT, r, LONG_AGO)
    assert base.spread == D(1)  # MAD 0: 10 % of 10
    assert not judge(D(14), base, r, AT).anomalous  # threshold 14, not above it
    assert judge(D("14.01"), base, r, AT).anomalous


def test_small_spend_never_pages_below_the_minimum_delta() -> None:
    history = weekly("0.10", "0.12", "0.11", "0.10")
    base = baseline_of(history, AT, rule(), LONG_AGO)
    assert not judge(D(3), base, rule(min_delta_usd="5"), AT).anomalous  # 30x, but +$2.89
    assert judge(D(3), base, rule(min_delta_usd="2"), AT).anomalous


def test_a_new_group_stands_against_zero() -> None:
    r = rule(min_delta_usd="5")
    base = baseline_of({}, AT, r, LONG_AGO)  # the scope has history; this group none
    assert (base.center, base.spread, base.points) == (D(0), D(0), (D(0),) * 4)
    assert not judge(D("4.99"), base, r, AT).anomalous
    assert judge(D(5), base, r, AT).anomalous


def test_cold_start_daily_then_learning() -> None:
    r = rule(min_delta_usd="1")
    # 8 days of history: one weekly point (< min_weeks 2) -> the same hour on the weekdays
    # among the last 8 days (AT is a Monday: not Sunday 1, Saturday 2 nor Sunday 8 days ago).
    method, hours = reference_hours(AT, r, AT - 8 * DAY)
    assert method == "daily"
    assert hours == tuple(AT - DAY * k for k in range(3, 8))
    daily = {AT - DAY * k: D(10) for k in range(1, 8)}
    base = baseline_of(daily, AT, r, AT - 8 * DAY)
    assert judge(D(15), base, r, AT).threshold == D(16)  # 10 + 4 x 1.5 (widened) x 1
    assert not judge(D(16), base, r, AT).anomalous
    assert judge(D("16.01"), base, r, AT).anomalous
    # Two days of history, both weekend days: learning, nothing is anomalous however large.
    assert reference_hours(AT, r, AT - 2 * DAY) == ("learning", ())
    learning = baseline_of(daily, AT, r, AT - 2 * DAY)
    assert not judge(D(10_000), learning, r, AT).anomalous
    assert reference_hours(AT, r, None) == ("learning", ())
    # Two weeks of history: seasonal with the two weeks it has.
    method, hours = reference_hours(AT, r, AT - 2 * WEEK)
    assert (method, hours) == ("seasonal", (AT - WEEK, AT - 2 * WEEK))


def test_weeks_follow_local_time_across_a_dst_change() -> None:
    at = datetime(2026, 11, 2, 9, tzinfo=UTC)  # 10:00 in Paris (CET, after 25 October)
    _, hours = reference_hours(at, rule(timezone="Europe/Paris", weeks=2), at - 5 * WEEK)
    # 10:00 local each week: 09:00 UTC on 26 October (CET), 08:00 UTC on 19 October (CEST)
    assert hours == (datetime(2026, 10, 26, 9, tzinfo=UTC), datetime(2026, 10, 19, 8, tzinfo=UTC))


def episode(last: datetime, ended: datetime | None = None) -> Episode:
    return Episode(
        "e1", "r", (("team", "support"),), ("support",), AT, last, ended,
        D(1), D(9), D(8), "seasonal", (), AT + HOUR, 1,
    )  # fmt: skip


def verdict(at: datetime, anomalous: bool) -> Any:
    r = rule(min_delta_usd="1")
    base = baseline_of(weekly("1", "1", "1", "1"), AT, r, LONG_AGO)
    return judge(D(9) if anomalous else D(1), base, r, at)


def test_an_episode_opens_once_continues_and_ends_after_quiet_hours() -> None:
    assert step(None, verdict(AT, True), 2) == "open"
    assert step(None, verdict(AT, False), 2) == "none"
    active = episode(AT)
    assert step(active, verdict(AT, True), 2) == "none"  # the same hour again: counted
    assert step(active, verdict(AT + HOUR, True), 2) == "continue"
    assert step(active, verdict(AT + HOUR, False), 2) == "none"  # one quiet hour
    assert step(active, verdict(AT + 2 * HOUR, False), 2) == "end"  # two quiet hours
    assert step(active, verdict(AT + HOUR, False), 1) == "end"


@pytest.mark.parametrize(
    ("actions", "ended", "expected"),
    [
        ([], None, ("open", "spendstream")),
        ([("acknowledged", "ann", 1)], None, ("acknowledged", "ann")),
        ([("acknowledged", "ann", 1)], 2, ("resolved", "spendstream")),  # the detector ends it
        ([("dismissed", "bob", 1)], 2, ("dismissed", "bob")),  # a dismissal stays
        ([("resolved", "ann", 1)], 2, ("resolved", "ann")),
        ([("open", "cyd", 3)], 2, ("open", "cyd")),  # reopened after the end
    ],
)
def test_the_inbox_state_folds_people_and_the_detector(
    actions: list[tuple[str, str, int]], ended: int | None, expected: tuple[str, str]
) -> None:
    base = AT + 2 * HOUR
    e = episode(AT, None if ended is None else base + ended * HOUR)
    done = [Action("e1", state, who, "", base + at * HOUR) for state, who, at in actions]  # type: ignore[arg-type]
    status = inbox_status(e, done)
    assert (status.state, status.by) == expected


def test_config_errors_name_the_file_the_key_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "spendstream.toml"
    path.write_text(
        '[alerts.channels]\noncall = "json://127.0.0.1:9/hook"\n'
        '[[budgets]]\nname = "team-spend"\nlimit = "10"\n'
        '[[anomalies]]\nname = "team-spend"\n'
        '[[anomalies]]\nname = "by-feature"\ngroup_by = ["Feature"]\nsensitivity = 0\n'
    )
    settings = load_settings(path)
    with pytest.raises(ConfigError) as caught:
        load_anomalies(settings, load_alerting(settings, path), path)
    message = str(caught.value)
    assert f"invalid anomalies configuration in {path}" in message
    assert "anomalies[1].sensitivity = 0" in message and "fix: robust deviations" in message
    assert "anomalies[1].group_by" in message and "'Feature' is not a tag name" in message
    assert "anomalies[0].name = 'team-spend': already names a budget" in message


def test_channels_and_weeks_are_checked_then_defaults_apply(tmp_path: Path) -> None:
    path = tmp_path / "spendstream.toml"
    path.write_text(
        '[alerts.channels]\noncall = "json://127.0.0.1:9/hook"\n'
        '[[anomalies]]\nname = "by-feature"\ngroup_by = ["team", "feature"]\n'
        'channels = ["oncall"]\nscope = { env = "prod" }\n'
        '[[anomalies]]\nname = "by-user"\ngroup_by = ["user"]\nchannels = ["pager"]\n'
        "weeks = 2\nmin_weeks = 3\n"
    )
    settings = load_settings(path)
    with pytest.raises(ConfigError) as caught:
        load_anomalies(settings, load_alerting(settings, path), path)
    message = str(caught.value)
    assert "anomalies[1].min_weeks = 3: more than weeks = 2" in message
    assert (
        "'pager' is not defined; fix: add it under [alerts.channels] (defined: oncall)" in message
    )
    assert "anomalies[0]" not in message
    path.write_text(
        path.read_text().replace('channels = ["pager"]\nweeks = 2\nmin_weeks = 3\n', "")
    )
    settings = load_settings(path)
    first, second = load_anomalies(settings, load_alerting(settings, path), path)
    assert (first.group_by, first.scope_filters, first.channels) == (
        ["team", "feature"],
        {"env": ("prod",)},
        ["oncall"],
    )
    assert (second.weeks, second.min_weeks, second.sensitivity, second.min_delta_usd) == (
        4,
        2,
        D(4),
        D(5),
    )
