"""Column writers for the ledger INSERT: ClickHouse types resolved once per writer, with money
columns written as pre-scaled integers.

clickhouse-connect writes a ``Decimal(P, S)`` value as ``int(Decimal(str(x)) * 10**S)``: a
string round trip per value, six money columns per event. Our money values are already
``Decimal``, so :class:`ScaledDecimal` shifts each one's exponent instead
(``Decimal.scaleb``, exact at the column's precision) and packs the little-endian integers in
one ``join`` — same bytes, half the time (docs/benchmarks-scale.md). Both truncate digits past
the column's scale toward zero, as ClickHouse does on insert. The stream's token costs arrive
as whole 1e-18 USD already (``pricing.scaled``): :class:`ScaledInteger` writes those as they are.
"""

from __future__ import annotations

import decimal
import sys
from array import array
from collections.abc import Callable, Iterator, MutableSequence, Sequence
from datetime import UTC, datetime, timedelta
from itertools import repeat
from operator import attrgetter, floordiv, sub
from typing import Any

from clickhouse_connect.datatypes.base import ClickHouseType
from clickhouse_connect.datatypes.numeric import BigDecimal
from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.datatypes.temporal import DateTime64
from clickhouse_connect.driver.common import write_array
from clickhouse_connect.driver.insert import InsertContext

LITTLE_ENDIAN = sys.byteorder == "little"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ZERO = timedelta(0)


class ScaledDecimal(BigDecimal, registered=False):
    """A ``Decimal128``/``Decimal256`` column that accepts ``Decimal``, ``int`` or ``None``
    (nullable columns) and writes ``value × 10**scale`` as a signed little-endian integer."""

    def _write_column_binary(
        self, column: Sequence[Any] | MutableSequence[Any], dest: bytearray, ctx: InsertContext
    ) -> None:
        size, scale, exact = self.byte_size, self.scale, decimal.Decimal
        if not any(column):  # all None or zero (provider_cost_usd, nearly always): zeros
            dest += bytes(size * len(column))
            return
        with decimal.localcontext() as context:
            context.prec = self.prec  # scaleb rounds to the context: keep every digit
            dest += b"".join(
                [
                    int(
                        (value if type(value) is exact else exact(str(value))).scaleb(scale)
                        if value
                        else 0
                    ).to_bytes(size, "little", signed=True)
                    for value in column
                ]
            )


class ScaledInteger(BigDecimal, registered=False):
    """A ``Decimal128``/``Decimal256`` column whose values arrive already scaled: whole units of
    ``10**-scale`` as ``int`` (``pricing.scaled``'s 1e-18 USD), written as they are."""

    def _write_column_binary(
        self, column: Sequence[Any] | MutableSequence[Any], dest: bytearray, ctx: InsertContext
    ) -> None:
        size = self.byte_size
        if column and LITTLE_ENDIAN and min(column) >= 0 and max(column) < 2**63:
            # Every value fits one signed 64-bit word (costs below ~9.2 USD): the low words in
            # one C-level conversion, the high words zero; the same bytes as to_bytes.
            words = array("q", bytes(size * len(column)))
            words[:: size // 8] = array("q", column)
            dest += words.tobytes()
            return
        dest += b"".join([value.to_bytes(size, "little", signed=True) for value in column])


class RepeatedDateTime64(DateTime64, registered=False):
    """``DateTime64`` that converts a column holding one moment (the slice's ``ingested_at``)
    once and repeats its bytes (~0.3 µs per event less), and a column of UTC moments (the
    event times) by C-level ``timedelta`` arithmetic instead of clickhouse-connect's Python
    call per value; any other column is written as clickhouse-connect writes it. A
    LowCardinality dictionary built by C calls was measured and dropped: its cost is hashing
    each event's fresh string objects, not the loop."""

    def _write_column_binary(
        self, column: Sequence[Any] | MutableSequence[Any], dest: bytearray, ctx: InsertContext
    ) -> None:
        first = column[0] if column else None
        if first is None or type(first) is not datetime:
            super()._write_column_binary(column, dest, ctx)
        elif column[-1] == first and column.count(first) == len(column):
            one = bytearray()
            super()._write_column_binary([first], one, ctx)
            dest += bytes(one) * len(column)
        elif (ticks := self._utc_ticks(column)) is not None:
            write_array("q", ticks, dest, ctx.column_name)
        else:
            super()._write_column_binary(column, dest, ctx)

    def _utc_ticks(self, column: Sequence[Any]) -> list[int] | None:
        """The ticks of ``column`` when every value is a ``datetime`` at a zero UTC offset,
        else None. The stock writer's ``floor(value.timestamp())`` seconds plus microseconds,
        scaled down, is the floor of the exact microseconds since the epoch over the tick:
        ``(value - EPOCH) // tick`` gives the same integers (tests/test_hotpath_objects.py)."""
        tick, rest = divmod(1_000_000, self.prec)
        if rest or not tick or set(map(type, column)) != {datetime}:
            return None
        zones = set(map(attrgetter("tzinfo"), column))
        if not all(zone is not None and zone.utcoffset(None) == ZERO for zone in zones):
            return None  # naive (the server's zone applies) or a zone whose offset varies
        count = len(column)
        deltas = map(sub, column, repeat(EPOCH, count))
        return list(map(floordiv, deltas, repeat(timedelta(microseconds=tick), count)))


def scaled_integer(kind: ClickHouseType) -> ClickHouseType:
    """``kind`` (a big ``Decimal`` column type) taking pre-scaled integers."""
    assert isinstance(kind, BigDecimal), kind
    return ScaledInteger(kind.type_def, kind.prec, kind.byte_size * 8, kind.scale)


def insert_types(type_names: Sequence[str]) -> list[ClickHouseType]:
    """The clickhouse-connect types for ``type_names`` (``system.columns`` spelling), big
    ``Decimal`` and ``Nullable(Decimal)`` columns as :class:`ScaledDecimal`, ``DateTime64`` as
    :class:`RepeatedDateTime64`."""
    types: list[ClickHouseType] = []
    for name in type_names:
        found = get_from_name(name)
        if isinstance(found, BigDecimal):
            types.append(
                ScaledDecimal(found.type_def, found.prec, found.byte_size * 8, found.scale)
            )
        elif type(found) is DateTime64:
            types.append(RepeatedDateTime64(found.type_def))
        else:
            types.append(found)
    return types


class _Refused(Sequence[Any]):
    """A column that raises ``error`` when its writer reads it: how a block whose columns could
    not be built fails inside the driver's guarded write, so the INSERT fails whole and the
    client raises ``error`` (as it does for a value it cannot serialise)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __len__(self) -> int:
        raise self.error

    def __getitem__(self, index: Any) -> Any:
        raise self.error

    def __iter__(self) -> Iterator[Any]:
        raise self.error


# clickhouse-connect's versions whose private per-block hook (``InsertContext._next_block_data``,
# unchanged from 0.8 to 1.13) :func:`built_per_block` was written against and tested on; on any
# other version every column is built at once (the same rows, without the cache blocking).
BLOCK_HOOK_VERSIONS = ("1.12.", "1.13.")


def driver_takes_blocks() -> bool:
    """Whether the installed clickhouse-connect is one :data:`BLOCK_HOOK_VERSIONS` names."""
    import clickhouse_connect

    return str(clickhouse_connect.__version__).startswith(BLOCK_HOOK_VERSIONS)


class BlockFailure:
    """The first error building a block's columns, kept for the writer: over HTTP the body is
    streamed, so the driver may report the broken INSERT as a transport error (a proxy's 502,
    a closed connection: transient, retried as an outage) instead of this error."""

    error: Exception | None = None


def built_per_block(
    context: InsertContext,
    rows: Sequence[Any],
    build: Callable[[Sequence[Any]], list[list[Any]]],
    block: int,
) -> BlockFailure:
    """Set ``context`` (column-oriented, data not set) to insert ``rows``, whose columns
    ``build`` makes for ``block`` rows at a time as the driver serialises each block: the
    rows' objects are still in cache when their block's columns are written (cache blocking,
    docs/benchmarks-ingest.md). A retry rebuilds the blocks the same way. Returns where a
    block's build error is kept (re-raise it when the INSERT fails: :class:`BlockFailure`)."""
    count = len(context.column_names)
    failure = BlockFailure()
    context.req_block_size = block
    context.data = [rows] * count  # read only for its shape (columns × rows)
    if not driver_takes_blocks() or "_next_block_data" not in vars(context):
        context.data = build(rows)  # an untested driver: every column at once
        return failure

    def block_data(start: int, end: int) -> Sequence[Sequence[Any]]:
        try:
            columns = build(rows[start:end])
            if len(columns) != count:  # the driver checks the count only for data set whole
                raise ValueError(f"{len(columns)} columns built for {count}")
            return columns
        except Exception as exc:  # raised by the client: the INSERT fails whole
            failure.error = failure.error or exc
            return [_Refused(exc)] * count

    # A private hook (no public API hands the driver columns block by block), used only on the
    # versions above; tests/test_ledger_blocks.py fails if the installed one stops calling it.
    context._next_block_data = block_data
    return failure
