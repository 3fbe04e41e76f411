"""Tables people read: ``quotas status`` with amounts in the quota's own unit and times to the
minute (a bare ``5.0588412`` beside ``$5.00`` once), ``alerts list`` with a percent sign and
minutes (it printed ``50.05`` and microseconds). CSV and JSON keep every digit (not changed)."""

from __future__ import annotations

import contextlib
import io
from datetime import UTC, datetime
from decimal import Decimal

from spendstream.cli.alerts import readable_alert
from spendstream.cli.quotas import readable


def record(unit: str, used: str, limit: str, remaining: str) -> dict[str, object]:
    return {
        "quota": "q",
        "key": "user=bob",
        "decision": "allowed",
        "unit": unit,
        "used": Decimal(used),
        "limit": Decimal(limit),
        "remaining": Decimal(remaining),
        "resets_at": datetime(2026, 12, 7, tzinfo=UTC),
        "as_of": "2026-12-06T17:29:06.139000",  # as the worker's API sends it
        "reason": "",
    }


def test_dollar_amounts_follow_the_money_rule() -> None:
    row = readable(record("usd", "5.0588412", "5", "0"))
    assert row[4:9] == ["$5.06", "$5.00", "$0.00", "2026-12-07 00:00 UTC", "2026-12-06 17:29 UTC"]
    assert readable(record("usd", "0.2119231", "5", "4.7880769"))[4] == "$0.2119"


def test_other_units_are_counts_never_dollars() -> None:
    row = readable(record("tokens", "12000", "1000000", "988000"))
    assert row[4:7] == ["12000 tokens", "1000000 tokens", "988000 tokens"]
    assert readable(record("requests", "30", "30", "0"))[5] == "30 requests"


def test_alert_rows_show_a_percent_and_minutes() -> None:
    row = readable_alert(
        {"created": "2026-12-06T17:28:38.987000", "budget": "b", "percent": 50.05, "note": ""}
    )
    assert row == ["2026-12-06 17:28 UTC", "b", "50.05%", ""]


def test_the_cost_per_run_columns_are_dollars_not_a_currency_named_max() -> None:
    """``cost_max`` looked like a converted ``cost_<currency>`` column: ``MAX 0.1274``."""
    from spendstream.cli.output import emit_rows

    columns = ["agent", "cost_p50", "cost_max", "model_cost", "tool_cost", "cost_eur"]
    values = [Decimal("0.08499"), Decimal("0.1274"), Decimal("3.21"), Decimal("9.17")]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        emit_rows(columns, [["triage", *values, Decimal("2.5")]], "table")
    shown = buffer.getvalue()
    assert "MAX" not in shown
    for text in ("$0.08499", "$0.1274", "$3.21", "$9.17", "€2.50"):
        assert text in shown, shown
