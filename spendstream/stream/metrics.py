"""Prometheus metrics of the stream worker (served on the worker's web port at /metrics)."""

from __future__ import annotations

from dataclasses import dataclass

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
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_LATENCY = Histogram(
    "spendstream_batch_seconds",
    "Time to process and write one batch",
    buckets=LATENCY_BUCKETS,
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


@dataclass(frozen=True)
class StreamMetrics:
    """What one pipeline (one topic) counts; usage events keep their historical names."""

    events_in: Counter
    dead_lettered: Counter
    rejected: Counter
    duplicates: Counter
    batches_written: Counter
    sink_errors: Counter
    batch_latency: Histogram


USAGE = StreamMetrics(
    EVENTS_IN,
    EVENTS_DEAD_LETTERED,
    EVENTS_REJECTED_BY_LEDGER,
    DUPLICATES_IN_BATCH,
    BATCHES_WRITTEN,
    SINK_ERRORS,
    BATCH_LATENCY,
)


def _outcome_counter(name: str, help_text: str) -> Counter:
    return Counter(f"spendstream_outcomes_{name}", help_text, registry=REGISTRY)


OUTCOMES = StreamMetrics(
    _outcome_counter("in", "Outcome events consumed (each line counts; replays count again)"),
    _outcome_counter("dead_lettered", "Outcome events (lines) sent to the dead-letter topic"),
    _outcome_counter("rejected_by_store", "Valid outcome events the table kept rejecting"),
    _outcome_counter("duplicates_in_batch", "Repeated outcome event ids dropped within a batch"),
    _outcome_counter("batches_written", "Outcome batches written"),
    _outcome_counter("sink_errors", "Failed outcome inserts (outages retried; others isolated)"),
    Histogram(
        "spendstream_outcomes_batch_seconds",
        "Time to process and write one batch of outcome events",
        buckets=LATENCY_BUCKETS,
        registry=REGISTRY,
    ),
)
