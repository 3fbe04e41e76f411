"""The worker's garbage-collector settings: fewer, cheaper cyclic collections on the hot path.

CPython runs a young-generation collection every 700 container allocations, and every tenth of
those also scans the older generation. A worker slice allocates several containers per event
(each entry, its origin and rating, Faust's records) while ~10⁶ long-lived objects (Faust,
pydantic, the API, the price catalogue) sit in the heap, so collections ran every ~150 events
and cost ~5 µs of the ~13 µs per event of ``BatchProcessor.process`` (docs/benchmarks-ingest.md,
"Where a worker's CPU goes"). Nothing on the hot path makes reference cycles; the collector only
has to catch the rare ones elsewhere, so:

- :func:`gc.freeze` moves everything alive once the worker is built to a generation never
  scanned again (it lives as long as the process anyway);
- the young-generation threshold rises to ``YOUNG_THRESHOLD`` allocations: a slice's objects
  mostly die (refcount) before a collection sees them.

Reference counting frees everything else as before; the setting changes no result.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000  # allocations between young collections (CPython's default: 700)
OLDER_THRESHOLDS = (10, 10)  # CPython's defaults for the older generations


def tune_collector() -> tuple[int, int, int]:
    """Freeze what is alive now and raise the young-generation threshold; returns the
    previous thresholds. Call once, after the worker is built and before it consumes."""
    previous = gc.get_threshold()
    # No gc.collect() first: at this point it finds ~20 unreachable objects among ~218 k and
    # costs 0.13-0.17 CPU-s of every start (docs/testing.md); freezing them keeps a few kB.
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
    return previous
