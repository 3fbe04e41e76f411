"""The one parse of the times and durations a caller names (spendstream.moments, .durations):
out of the supported range, too long or backwards is the caller's mistake with a message (a 400,
CLI exit 2), never an OverflowError (a 500, a traceback). Unit tests, no storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import HTTPException
from pydantic import ValidationError
from typer.testing import CliRunner

from spendstream.alerts.silences import SilenceRequest, record_silence
from spendstream.anomalies.http import since_moment
from spendstream.api.common import parse_instant, parse_span
from spendstream.cli import quick
from spendstream.cli.errors import EXIT_USAGE
from spendstream.cli.reading import read_moment
from spendstream.currency.rates import RateFileError, parse_rates_csv
from spendstream.durations import LONGEST, parse_duration
from spendstream.explain import periods
from spendstream.moments import EARLIEST, LATEST, after, parse_moment, parse_period
from spendstream.quotas.overrides import OverrideRequest
from spendstream.reconcile.http import parse_day

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
# What the hostile tester sent: each overflowed a datetime or left ClickHouse's range.
OUT_OF_RANGE = [
    "0001-01-01",
    "1000000000d",
    "9999999999999999999s",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59",
    "1969-12-31T23:59:59Z",
    "2100-01-01",
    "25000d",  # a valid duration, but 25,000 days ago is before 1970
]


@pytest.mark.parametrize("value", ["1000000000d", "9999999999999999999s", "1" * 400 + "s", 1e400])
def test_a_huge_duration_is_a_value_error_not_an_overflow(value: object) -> None:
    with pytest.raises(ValueError, match="longer than spendstream supports"):
        parse_duration(value)  # type: ignore[arg-type]


def test_the_longest_duration_is_the_span_of_the_range() -> None:
    assert parse_duration(f"{LONGEST.days}d") == LONGEST == LATEST - EARLIEST
    with pytest.raises(ValueError):
        parse_duration(f"{LONGEST.days + 1}d")


@pytest.mark.parametrize("text", OUT_OF_RANGE)
def test_a_moment_out_of_range_is_refused_with_the_range(text: str) -> None:
    with pytest.raises(ValueError, match=r"supported range 1970-01-01|longer than"):
        parse_moment(text, NOW)


def test_moments_in_range_are_utc() -> None:
    assert parse_moment("now", NOW) == NOW
    assert parse_moment("7d", NOW) == NOW - timedelta(days=7)
    assert parse_moment("2026-11-01", NOW) == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_moment("2026-11-01T02:00+02:00", NOW) == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_moment("1970-01-01T00:00:00Z", NOW) == EARLIEST


@pytest.mark.parametrize("text", OUT_OF_RANGE)
def test_every_parser_of_a_time_refuses_the_same_way(text: str) -> None:
    """The API (400), the anomaly inbox (400), the CLI (ValueError: exit 2) share the parse."""
    for parse in (lambda: parse_instant(text, "since", NOW), lambda: since_moment(text, NOW)):
        with pytest.raises(HTTPException) as refused:
            parse()
        assert refused.value.status_code == 400 and "since" in str(refused.value.detail)
    with pytest.raises(ValueError):
        read_moment(text, NOW)


@pytest.mark.parametrize("text", ["0001-01-01", "9999-12-31T23:59:59", "9999-12-31T23:59:59-01:00"])
def test_reconcile_refuses_a_day_out_of_range(text: str) -> None:
    with pytest.raises(HTTPException) as refused:
        parse_day(text, "until", NOW)
    assert refused.value.status_code == 400 and "supported range" in str(refused.value.detail)


@pytest.mark.parametrize(("since", "until"), [("1h", "2h"), ("now", "now"), ("1d", "1d")])
def test_an_empty_or_backwards_period_is_refused_by_the_one_parse(since: str, until: str) -> None:
    with pytest.raises(ValueError, match="must come before until"):
        parse_period(since, until, NOW)
    with pytest.raises(HTTPException) as refused:
        parse_span(since, until, NOW)
    assert refused.value.status_code == 400
    assert "must come before until" in str(refused.value.detail)
    assert parse_span("2h", "1h", NOW) == (NOW - timedelta(hours=2), NOW - timedelta(hours=1))


def test_explain_refuses_a_baseline_out_of_range() -> None:
    with pytest.raises(ValueError, match="supported range"):
        periods(NOW - timedelta(days=1), NOW, timedelta(days=40_000))


def test_expiries_past_the_range_are_refused() -> None:
    assert after(NOW, "2h") == NOW + timedelta(hours=2)
    with pytest.raises(ValueError, match="supported range"):
        after(NOW, "40000d")
    with pytest.raises(ValueError, match="longer than"):
        after(NOW, "1000000000d")
    with pytest.raises(ValidationError, match="longer than"):
        SilenceRequest(budget="search-daily", duration="100000000d")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="longer than"):
        OverrideRequest(quota="q", duration="99999999999d")  # type: ignore[arg-type]
    request = SilenceRequest(budget="search-daily", duration="40000d")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="supported range"):
        record_silence(None, request, NOW)  # type: ignore[arg-type]  # refused before the store


def test_a_rate_dated_out_of_range_is_a_bad_line() -> None:
    with pytest.raises(RateFileError, match="line 2: date: 0001-01-01 is outside"):
        parse_rates_csv("date,currency,rate\n0001-01-01,EUR,0.9\n")


def test_the_duration_schema_says_what_the_routes_accept() -> None:
    """OpenAPI advertised ISO 8601 (``PT1H``), which the routes refuse."""
    for model, name in ((OverrideRequest, "quota"), (SilenceRequest, "budget")):
        schema = model.model_json_schema()["properties"]["duration"]
        assert schema["default"] == "1h" and "format" not in schema
        assert all(parse_duration(example) for example in schema["examples"])
        assert model.model_validate({name: "q"}).duration == timedelta(hours=1)
        with pytest.raises(ValidationError, match="not a duration"):
            model.model_validate({name: "q", "duration": "PT1M"})


@pytest.mark.parametrize("since", ["1000000000d", "9999999999999999999s"])
def test_the_cli_says_a_time_out_of_range_is_a_usage_error(since: str) -> None:
    """The quick path hands a bad time to Typer (no traceback), which exits 2 with a message."""
    from spendstream.cli.root import app

    assert quick._report_values(["--since", since]) is None
    for command in (["report", "--since", since], ["explain", "--since", since]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == EXIT_USAGE, result.output
        assert isinstance(result.exception, SystemExit)
        assert "longer than spendstream supports" in result.output
