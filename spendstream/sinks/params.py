"""Values bound as ClickHouse server-side parameters (``{name:Type}``), never spliced into SQL.

A query builder fills the ``params`` dict it is given: each helper stores a value under a fresh
name and returns its placeholder, and the caller sends ``params`` with the query
(``client.query(sql, parameters=params)``, ``Reader.query(sql, params)``). clickhouse-connect
sends bound values apart from the statement, so no value (a tag from an event, a scope from the
configuration, a quota key typed by a user) can change it. Only identifiers (table and column
names, from fixed lists in the code) are still written into SQL; tag keys are bound too, as
``tags[{name:String}]``. ``sinks.audits.render_sql`` turns a bound query back into literal text
for humans to read or paste (``spendstream sql``, an alert's drill-down); nothing runs that.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

Params = dict[str, Any]


def bind(params: Params, value: Any, type_: str) -> str:
    """Store ``value`` in ``params`` under a fresh name; its placeholder ``{name:type_}``."""
    number = len(params)
    while f"v{number}" in params:
        number += 1
    params[f"v{number}"] = value
    return f"{{v{number}:{type_}}}"


def string(params: Params, value: str) -> str:
    return bind(params, value, "String")


def strings(params: Params, values: Iterable[str]) -> str:
    """An ``Array(String)`` placeholder: ``column IN {v0:Array(String)}``."""
    return bind(params, list(values), "Array(String)")


def moment(params: Params, value: datetime) -> str:
    """A UTC ``DateTime64(3)`` placeholder (``value`` converted to UTC, cut to milliseconds)."""
    utc = value.astimezone(UTC)
    return bind(params, utc.replace(microsecond=utc.microsecond // 1000 * 1000), MOMENT)


MOMENT = "DateTime64(3, 'UTC')"
