"""Where a worker's Python CPU goes, per event: py-spy's stacks of the thread holding the GIL
(``bench.scale workers --profile FILE``) split into the parts of the hot path.

    .venv/bin/python -m bench.hotpath FILE [--us-per-event 28.1]

Each stack counts for the first part below whose marker it contains (most specific first);
with ``--us-per-event`` (the run's measured worker CPU per event) the shares become µs per
event, so the parts add up to the measured total. py-spy's ``--gil`` samples only the thread
holding the GIL, so the samples are the worker's Python CPU; what native threads do without it
(sockets, lz4) is the difference to the measured total.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

# (part, markers): a stack belongs to the first part with a marker among its frames.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("api (the bench's polling)", ("ApiServer._run", "routes_admin", "anyio/", "starlette/")),
    ("leader jobs (alerts, quotas, elector)", ("EvaluationLoop", "Dispatcher", "Elector", "Quota")),
    ("gc (collections)", ("gc_collect", "(gc)")),
    ("decode (msgspec + checks)", ("FastDecoder.decode",)),
    ("parse_event (reference path)", ("parse_event",)),
    ("price", ("ScaledPricer.rate", "Pricer.rate")),
    ("process (lines, bounds, entries, dedup)", ("LineProcessor.process",)),
    ("ledger columns", ("ledger_columns",)),
    ("insert serialise (clickhouse-connect)", ("write_column", "build_insert")),
    ("insert http", ("LedgerWriter.insert",)),
    ("rollup refresh (SQL round trips)", ("refresh_rollups", "settle", "_flush")),
    ("observers (budgets, quotas)", ("on_batch",)),
    ("pipeline bookkeeping", ("StreamPipeline", "LedgerStep", "Pipeline.", "raw_messages")),
    ("faust / aiokafka", ("faust/", "aiokafka/", "mode/")),
    ("event loop, other", ("",)),
)


def split(raw: Path) -> dict[str, int]:
    """Samples per part of the raw stacks in ``raw`` (py-spy ``-f raw``)."""
    parts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        part = next(name for name, markers in PARTS if any(m in stack for m in markers))
        parts[part] += int(count)
    return dict(parts)


def breakdown(raw: Path, us_per_event: float | None) -> dict[str, float]:
    """Share (or µs per event, given the measured total) of each part, largest first."""
    parts = split(raw)
    total = sum(parts.values())
    scale = (us_per_event or 100.0) / total if total else 0.0
    ordered = sorted(parts.items(), key=lambda item: -item[1])
    return {name: round(count * scale, 2) for name, count in ordered}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hotpath", description=__doc__)
    parser.add_argument("raw", type=Path)
    parser.add_argument("--us-per-event", type=float, help="the run's worker CPU µs/event")
    args = parser.parse_args(argv)
    print(json.dumps(breakdown(args.raw, args.us_per_event), indent=1))


if __name__ == "__main__":
    main()
