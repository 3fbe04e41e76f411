"""Benchmark: ``Recorder.record()`` against a bare ``KafkaProducer.send`` on a Tansu broker.

Both run in the same process against the same broker, with the same producer settings (acks=all,
linger, lz4, no idempotence). Two loops per contender:

- ``burst``: N calls back to back. Measures throughput-bound cost: the background threads
  (our sender, Kafka's I/O thread) compete for the GIL with the calling thread.
- ``paced``: one call every ~``--gap-us`` microseconds, as a service making LLM calls would; the
  background work happens between calls, so this is the latency an app sees.

``record()`` builds and validates a UsageEvent and serialises it; the bare send gets a
pre-serialised payload. Prints a table and one JSON line. Usage::

    python bench/bench_sdk.py --n 50000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaProducer

from spendstream.embedded import TansuBroker
from spendstream.events import UsageEvent
from spendstream.producers import Recorder, RecorderOptions

TARGET_MEAN_US = 20.0
TARGET_RATIO = 1.2


def measure(call: Callable[[int], object], n: int, gap_us: float) -> list[float]:
    """Per-call durations in microseconds (the gap between calls is not measured)."""
    durations = []
    clock = time.perf_counter
    for i in range(n):
        started = clock()
        call(i)
        durations.append((clock() - started) * 1e6)
        if gap_us:
            time.sleep(gap_us / 1e6)  # releases the GIL, as waiting on an LLM call would
    return durations


def summary(durations: list[float]) -> dict[str, float]:
    ordered = sorted(durations)
    return {
        "mean_us": round(statistics.fmean(ordered), 2),
        "p50_us": round(ordered[len(ordered) // 2], 2),
        "p99_us": round(ordered[int(len(ordered) * 0.99)], 2),
        "max_us": round(ordered[-1], 1),
    }


def run(bootstrap: str, n: int, gap_us: float) -> dict[str, Any]:
    options = RecorderOptions(bootstrap_servers=bootstrap, topic="bench.sdk")
    sample = UsageEvent(
        provider="openai", model="gpt-4o", input_tokens=1200, output_tokens=300, tags={"team": "a"}
    )
    payload, key = sample.to_json_bytes(), b"a"
    bare = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=options.linger_ms,
        compression_type=options.compression,
        batch_size=options.batch_bytes,
    )
    bare.send("bench.bare", payload, key=key).get(10)

    def send(_: int) -> object:
        return bare.send("bench.bare", payload, key=key)

    results: dict[str, Any] = {"n": n, "gap_us": gap_us}
    with tempfile.TemporaryDirectory() as spool_dir:
        recorder = Recorder(options.model_copy(update={"spool_dir": spool_dir}))
        recorder.record(provider="openai", model="gpt-4o")
        recorder.flush(10)

        def record(i: int) -> object:
            return recorder.record(
                provider="openai",
                model="gpt-4o",
                input_tokens=1200 + i % 7,
                output_tokens=300,
                tags={"team": "a"},
            )

        for mode, gap in (("burst", 0.0), ("paced", gap_us)):
            for name, call in (("bare_send", send), ("record", record)):
                measure(call, min(n, 2000), gap)  # warm-up
                results[f"{mode}.{name}"] = summary(measure(call, n, gap))
            bare.flush()
            recorder.flush(60)
            ratio = results[f"{mode}.record"]["mean_us"] / results[f"{mode}.bare_send"]["mean_us"]
            results[f"{mode}.ratio"] = round(ratio, 2)
        stats = recorder.stats()
        recorder.close()
    bare.close()
    results["recorder_stats"] = stats.model_dump(include={"recorded", "sent", "spooled", "dropped"})
    results["target"] = {"mean_us": TARGET_MEAN_US, "ratio": TARGET_RATIO}
    return results


def print_table(results: dict[str, Any]) -> None:
    print(f"{'mode':<6} {'call':<10} {'mean µs':>9} {'p50 µs':>9} {'p99 µs':>9} {'max µs':>10}")
    for mode in ("burst", "paced"):
        for name in ("bare_send", "record"):
            row = results[f"{mode}.{name}"]
            print(
                f"{mode:<6} {name:<10} {row['mean_us']:>9} {row['p50_us']:>9} {row['p99_us']:>9} "
                f"{row['max_us']:>10}"
            )
        print(f"{mode:<6} {'ratio':<10} {results[f'{mode}.ratio']:>9}  (record / bare send)")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="calls per contender and mode")
    parser.add_argument("--gap-us", type=float, default=200.0, help="pause between paced calls")
    parser.add_argument("--bootstrap", help="use this broker instead of starting Tansu")
    args = parser.parse_args(argv)
    if args.bootstrap:
        results = run(args.bootstrap, args.n, args.gap_us)
    else:
        with TansuBroker() as broker:
            results = run(broker.bootstrap_servers, args.n, args.gap_us)
    print_table(results)
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
