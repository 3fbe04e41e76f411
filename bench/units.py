"""Usage units: what they cost the processor and the sink, measured against token-only events.

``python -m bench.units [--events N]``: the same events (bench.common.make_events) twice, once as
they are and once with units (web searches on the chat calls; a quarter of them whisper-1
transcriptions with fractional audio seconds), through ``BatchProcessor.process`` and
``LedgerWriter.write`` (INSERT + rollup refresh with the unit maps) on an embedded chDB. Prints
the figures of each and their ratio (units / tokens), measured in one run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from decimal import Decimal
from pathlib import Path

from bench.common import make_events
from bench.sink import entries_for, processor_run, sink_run
from spendstream.events import UsageEvent


def with_units(events: list[UsageEvent]) -> list[UsageEvent]:
    """Chat calls with 1-3 web searches; every fourth event a whisper-1 transcription (no tokens,
    fractional audio seconds) instead."""
    out = []
    for index, event in enumerate(events):
        update: dict[str, object] = {"units": {"web_search_calls": Decimal(1 + index % 3)}}
        if index % 4 == 0:
            update = {
                "model": "whisper-1",
                "input_tokens": 0,
                "output_tokens": 0,
                "units": {"audio_seconds": Decimal(f"{index % 600}.5")},
            }
        out.append(event.model_copy(update=update))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.units")
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--batch", type=int, default=2_000)
    args = parser.parse_args(argv)
    tokens = make_events(args.events, prefix="tok")
    units = with_units(make_events(args.events, prefix="unit"))
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, events in (("tokens", tokens), ("units", units)):
            payloads = [event.to_json_bytes() for event in events]
            dsn = f"chdb://{Path(tmp) / name}"
            results[name] = {
                "processor": processor_run(payloads, args.batch),
                "sink": sink_run(dsn, entries_for(payloads), args.batch, 0),
            }
    processor = {name: result["processor"] for name, result in results.items()}
    sink = {name: result["sink"] for name, result in results.items()}
    ratios = {
        "processor_events_per_s": processor["units"]["events_per_s"]  # type: ignore[index]
        / processor["tokens"]["events_per_s"],  # type: ignore[index]
        "writer_events_per_s": sink["units"]["writer_events_per_s"]  # type: ignore[index]
        / sink["tokens"]["writer_events_per_s"],  # type: ignore[index]
    }
    print(json.dumps({"results": results, "units_vs_tokens": ratios}, indent=2, default=str))


if __name__ == "__main__":
    main()
