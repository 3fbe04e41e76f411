"""pyarrow is the ``export`` extra: the FOCUS modules import it only to write or read Parquet,
and without it Parquet fails with an error naming the extra, before any query or file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from spendstream.errors import InputError
from spendstream.reconcile.focus_bill import read_rows
from spendstream.sinks.access import QueryResult
from spendstream.sinks.focus import write_csv, write_parquet
from spendstream.sinks.focus_columns import DEFAULT_VERSION, TYPES, columns, schema
from spendstream.sinks.focus_export import export_focus

HINT = "pip install 'spendstream[export]'"


class NeverQueried:
    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult:
        raise AssertionError(f"queried although the export cannot be written: {sql}")


@pytest.fixture
def without_pyarrow(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import pyarrow`` fails as on an install without the extra (None in sys.modules)."""
    for name in [name for name in sys.modules if name.split(".")[0] == "pyarrow"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)


def test_the_focus_modules_import_no_pyarrow() -> None:
    probe = (
        "import sys\n"
        "import spendstream.sinks.focus, spendstream.sinks.focus_export\n"
        "import spendstream.reconcile.focus_bill, spendstream.cli.ledger\n"
        "print('pyarrow' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.usefixtures("without_pyarrow")
def test_parquet_without_pyarrow_names_the_extra(tmp_path: Path) -> None:
    target = tmp_path / "focus.parquet"
    with pytest.raises(InputError, match=re.escape(HINT)):
        write_parquet([], target)
    with pytest.raises(InputError, match="pyarrow"):
        export_focus(NeverQueried(), "2026-11", target, fmt="parquet")
    assert not target.exists()
    bill = tmp_path / "bill.parquet"
    bill.write_bytes(b"PAR1")
    wanted = f"reading bill.parquet needs pyarrow, which is not installed: {HINT}"
    with pytest.raises(InputError, match=re.escape(wanted)):
        read_rows(bill)


@pytest.mark.usefixtures("without_pyarrow")
def test_csv_needs_no_pyarrow(tmp_path: Path) -> None:
    target = tmp_path / "focus.csv"
    write_csv([], target)
    assert target.read_text().strip() == ",".join(columns(DEFAULT_VERSION))


def test_the_parquet_schema_with_pyarrow() -> None:
    import pyarrow as pa

    arrow = schema(DEFAULT_VERSION)
    assert arrow.field("BilledCost").type == pa.decimal128(38, 18)
    assert arrow.field("ChargePeriodStart").type == pa.timestamp("ms", tz="UTC")
    assert arrow.field("x_Events").type == pa.int64()
    assert arrow.names == list(columns(DEFAULT_VERSION))
    assert set(arrow.names) <= set(TYPES)
