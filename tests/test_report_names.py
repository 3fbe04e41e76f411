"""The names a report is grouped by (sinks.queries): the whole name is checked, and a name that
would give the answer two columns of one name is refused with what to do instead. Unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from spendstream.api.errors import status_for
from spendstream.errors import InputError
from spendstream.sinks.queries import TAG_NAME, ReportRefused, spend_report_sql, tag_column

NOW = datetime(2026, 12, 7, tzinfo=UTC)


@pytest.mark.parametrize("name", ["x\n", "team\n", "a\nb", "x "])
def test_a_name_with_a_newline_is_not_a_tag_name(name: str) -> None:
    """Python's ``$`` matches before a final newline: ``x\\n`` passed the check."""
    assert TAG_NAME.match(name) is None
    with pytest.raises(ReportRefused, match="is not a tag name"):
        tag_column(name, {})
    with pytest.raises(ReportRefused, match="is not a tag name"):
        spend_report_sql([name], NOW - timedelta(days=1), NOW)


@pytest.mark.parametrize(
    ("by", "granularity"),
    [
        (["cost_usd"], "none"),
        (["team", "events"], "none"),
        (["period"], "day"),
        (["unit", "quantity"], "none"),
    ],
)
def test_a_group_named_like_a_column_is_refused(by: list[str], granularity: str) -> None:
    """Two columns of one name: a JSON row (the CLI's -f json) kept only one of them."""
    with pytest.raises(ReportRefused, match="is also a column of the report") as refused:
        spend_report_sql(by, NOW - timedelta(days=1), NOW, granularity=granularity)
    assert "group by another tag" in str(refused.value)
    assert isinstance(refused.value, InputError) and status_for(refused.value) == 400


@pytest.mark.parametrize(("by", "granularity"), [(["period"], "none"), (["quantity"], "none")])
def test_names_free_in_this_report_still_group(by: list[str], granularity: str) -> None:
    sql, params = spend_report_sql(by, NOW - timedelta(days=1), NOW, granularity=granularity)
    assert by[0] in params.values() and "AS `by_0`" in sql
