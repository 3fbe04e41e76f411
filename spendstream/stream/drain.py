"""When the stream has drained: the moment the ledger step settles what its sink deferred.

A batch taken with no backlog behind it is not enough: a stream steadily faster than the
worker's batch rate (``batch_size`` events per ``batch_within_s``) is caught up after every batch,
and settling then would refresh the open minute, hour and day for every batch, which is what
the deferral exists to avoid (``sinks.open_windows``). The stream has drained when nothing waits
behind a batch *and* the batch was cut by the time limit, not the size: the worker waited for
events that did not come. A stream that stops exactly on a full batch is settled by the idle
check instead (``StreamPipeline.settle_if_idle``).

A stream steadily *slower* than the batch rate (SDK-packed events: 10 k events/s of 100-event
messages is 100 messages/s against 8,000 per ``batch_within_s``) has every batch cut by time with
nothing behind it, and settling each would refresh the open minute, hour and day every 0.25 s
(docs/benchmarks-ingest.md, session 11). Such a batch, coming less than the idle interval after
one that was caught up too, does not settle (:func:`steady`): the writer's timer keeps flushing
the open windows, and once the stream pauses the idle check settles it.
"""

from __future__ import annotations


def drained(backlog: int, taken: int, batch_size: int) -> bool:
    """Whether to settle after a batch of ``taken`` events with ``backlog`` waiting behind it."""
    return backlog == 0 and taken < batch_size


def steady(caught_up: bool, previous_caught_up: bool, gap_s: float, idle_s: float) -> bool:
    """Whether a caught-up batch belongs to a steady stream slower than the batch rate (module
    doc): the batch before it was caught up too and ended less than ``idle_s`` before it began."""
    return caught_up and previous_caught_up and gap_s < idle_s
