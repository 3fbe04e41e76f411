"""The ledger's money column writer stores exactly what clickhouse-connect's own writer stores."""

from __future__ import annotations

from decimal import Context, Decimal

from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.driver.client import Client

from spendstream.pricing.scaled import to_scaled
from spendstream.sinks.columns import ScaledDecimal, insert_types, scaled_integer

TYPES = ["Decimal(38, 18)", "Nullable(Decimal(38, 18))", "Decimal(38, 9)", "String"]
MONEY = [
    Decimal("0.000000000000000001"),
    Decimal("-12.5"),
    Decimal(0),
    Decimal("0E-18"),
    Decimal("99999999999999999999.999999999999999999"),  # 38 digits
    Decimal("-0.000123456789012345678"),  # a digit past the scale: truncated toward zero
    Decimal("1E+5"),
    7,
]


def test_types_resolved_once_with_money_as_scaled_decimal() -> None:
    types = insert_types(TYPES)
    assert [type(t) for t in types[:3]] == [ScaledDecimal] * 3
    assert [t.name for t in types] == [get_from_name(name).name for name in TYPES]
    assert types[1].nullable and not types[0].nullable


def test_scaled_writer_stores_what_the_stock_writer_stores(ledger_client: Client) -> None:
    table = "CREATE TABLE {} (a Decimal(38, 18), b Nullable(Decimal(38, 18)), c Decimal(38, 9), "
    table += "k String) ENGINE = MergeTree ORDER BY k"
    for name in ("money_stock", "money_scaled"):
        ledger_client.command(table.format(name))
    rows = [[value, None if i % 3 == 0 else value, value, str(i)] for i, value in enumerate(MONEY)]
    names = ["a", "b", "c", "k"]
    ledger_client.insert("money_stock", rows, column_names=names, column_type_names=TYPES)
    ledger_client.insert("money_scaled", rows, column_names=names, column_types=insert_types(TYPES))
    read = "SELECT k, toString(a), toString(b), toString(c) FROM {} ORDER BY k"
    stock = ledger_client.query(read.format("money_stock")).result_rows
    scaled = ledger_client.query(read.format("money_scaled")).result_rows
    assert scaled == stock
    assert dict((k, (a, b)) for k, a, b, _ in scaled)["0"] == ("0.000000000000000001", None)
    assert dict((k, a) for k, a, _, _ in scaled)["5"] == "-0.000123456789012345"


def test_scaled_integers_store_what_the_stock_writer_stores(ledger_client: Client) -> None:
    kind = "Decimal(38, 18)"
    table = "CREATE TABLE {} (a Decimal(38, 18), k String) ENGINE = MergeTree ORDER BY k"
    for name in ("ints_stock", "ints_scaled"):
        ledger_client.command(table.format(name))
    # costs as pricing quantizes them (1e-18 USD), up to the column's 38 digits
    exact = Context(prec=60)
    quantized = [
        value.quantize(Decimal("1e-18"), context=exact)
        for value in MONEY
        if isinstance(value, Decimal)
    ]
    stock = [[value, str(i)] for i, value in enumerate(quantized)]
    scaled = [[to_scaled(value), str(i)] for i, value in enumerate(quantized)]
    ledger_client.insert(
        "ints_stock", stock, column_names=["a", "k"], column_type_names=[kind, "String"]
    )
    types = [scaled_integer(insert_types([kind])[0]), get_from_name("String")]
    ledger_client.insert("ints_scaled", scaled, column_names=["a", "k"], column_types=types)
    read = "SELECT k, toString(a) FROM {} ORDER BY k"
    assert ledger_client.query(read.format("ints_scaled")).result_rows == (
        ledger_client.query(read.format("ints_stock")).result_rows
    )
