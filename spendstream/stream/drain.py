"""When the stream has drained: the moment the ledger step settles what its sink deferred.

A batch taken with no backlog behind it is not enough: a stream steadily faster than the
worker's batch rate (``batch_size`` events per ``batch_within_s``) is caught up after every batch,
and settling then would refresh the open minute, hour and day for every batch, which is what
the deferral exists to avoid (``sinks.open_windows``). The stream has drained when nothing waits
behind a batch *and* the batch was cut by the time limit, not the size: the worker waited for
events that did not come. A stream that stops exactly on a full batch is settled by the idle
check instead (``StreamPipeline.settle_if_idle``).
"""

from __future__ import annotations


def drained(backlog: int, taken: int, batch_size: int) -> bool:
    """Whether to settle after a batch of ``taken`` events with ``backlog`` waiting behind it."""
    return backlog == 0 and taken < batch_size
