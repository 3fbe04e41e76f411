"""Prometheus metrics of the stream worker (served on the worker's web port at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

EVENTS_IN = Counter(
    "spendstream_events_in",
    "Events consumed (each line of a multi-event message counts; replays count again)",
    registry=REGISTRY,
)
EVENTS_PRICED = Counter(
    "spendstream_events_priced", "Events written with a price", registry=REGISTRY
)
EVENTS_UNPRICED = Counter(
    "spendstream_events_unpriced", "Events written with priced=false", registry=REGISTRY
)
EVENTS_DEAD_LETTERED = Counter(
    "spendstream_events_dead_lettered",
    "Events (lines) sent to the dead-letter topic (replays count again)",
    registry=REGISTRY,
)
EVENTS_REJECTED_BY_LEDGER = Counter(
    "spendstream_events_rejected_by_ledger",
    "Valid events the ledger kept rejecting, isolated by splitting their slice, dead-lettered",
    registry=REGISTRY,
)
DUPLICATES_IN_BATCH = Counter(
    "spendstream_duplicates_in_batch",
    "Repeated event ids dropped within a batch",
    registry=REGISTRY,
)
BATCHES_WRITTEN = Counter(
    "spendstream_batches_written", "Ledger batches written", registry=REGISTRY
)
SINK_ERRORS = Counter(
    "spendstream_sink_errors",
    "Failed ledger calls (outages retried; other failures isolated)",
    registry=REGISTRY,
)
BATCH_LATENCY = Histogram(
    "spendstream_batch_seconds",
    "Time to process and write one batch",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "spendstream_consumer_lag",
    "High-water mark minus next offset, per partition",
    ["topic", "partition"],
    registry=REGISTRY,
)
SPANS_IN = Counter(
    "spendstream_otlp_spans_in", "OTLP spans consumed (GenAI or not)", registry=REGISTRY
)
