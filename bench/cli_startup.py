"""CLI cold start: wall clock (median of 10 fresh processes) and ``-X importtime`` totals.

``python -m bench.cli_startup`` prints JSON; ``make bench`` runs it as the ``cli`` stage. Each
command runs in a new interpreter (no warm import cache in the process; the OS file cache is
warm after the first run, as for a person typing commands). ``report`` and ``sql`` are timed
with ``--help``, which imports the command's module and parses its options but opens no
connection: the start-up cost the CLI itself adds.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
from typing import Any

COMMANDS = (("--help",), ("report", "--help"), ("sql", "--help"))
RUNS = 10
TOTAL = re.compile(r"import time:\s+\d+ \|\s+(\d+) \| (\S+)$")


def wall_ms(args: tuple[str, ...]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "spendstream", *args], capture_output=True, check=True)
    return (time.perf_counter() - started) * 1000


def import_ms(args: tuple[str, ...]) -> dict[str, float]:
    """Cumulative import time of ``spendstream.cli`` and the slowest top-level imports."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "spendstream", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    top: dict[str, float] = {}
    for line in done.stderr.splitlines():
        found = TOTAL.match(line)
        if found and not line.split("|")[2].startswith("  "):  # top level only
            top[found.group(2)] = int(found.group(1)) / 1000
    return dict(sorted(top.items(), key=lambda item: -item[1])[:5])


def python_ms() -> float:
    """The floor: a bare interpreter start."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return (time.perf_counter() - started) * 1000


def run(runs: int = RUNS) -> dict[str, Any]:
    out: dict[str, Any] = {
        "runs": runs,
        "python_ms": round(statistics.median(python_ms() for _ in range(runs)), 1),
    }
    for args in COMMANDS:
        name = " ".join(args)
        wall_ms(args)  # warm the OS file cache once
        times = sorted(wall_ms(args) for _ in range(runs))
        out[name] = {
            "median_ms": round(statistics.median(times), 1),
            "max_ms": round(times[-1], 1),
            "slowest_imports_ms": import_ms(args),
        }
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
