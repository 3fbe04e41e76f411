"""Producer counters: a thread-safe tally, its pydantic snapshot, and a Prometheus collector.

Counters (all monotonic except the gauges at the end of :class:`RecorderStats`):

- ``recorded``: events accepted by ``record()`` (valid, handed to the queue or the spool).
- ``sent``: events the broker confirmed (acks=all), first attempt or replay.
- ``spooled``: events written to the disk spool (broker down, send failed, or queue full).
- ``replayed``: spooled events the broker later confirmed (a subset of ``sent``), including those
  of slots dead processes left (:mod:`.orphans`), so ``sent`` can exceed ``recorded``.
- ``dropped{reason}``: events lost on purpose, each with a loud log line. Reasons:
  ``invalid`` (not a valid UsageEvent), ``spool_full``, ``record_timeout`` (queue and spool both
  busy beyond the bound), ``spool_corrupt`` (unreadable spool record or torn tail), ``closed``
  (recorded after ``close()``).
- ``tag_conflicts``: tag keys set to different values by different layers.
- ``producer_restarts``: KafkaProducer instances closed and recreated after failures.
- ``sender_errors``: unexpected exceptions in the sender thread (a bug; it keeps running).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel


class RecorderStats(BaseModel):
    recorded: int = 0
    sent: int = 0
    spooled: int = 0
    replayed: int = 0
    dropped: dict[str, int] = {}
    tag_conflicts: int = 0
    producer_restarts: int = 0
    sender_errors: int = 0  # unexpected exceptions in the sender thread (bugs); should stay 0
    # Gauges: the state right now.
    queued: int = 0
    in_flight: int = 0
    spool_bytes: int = 0
    spool_pending: bool = False
    broker_connected: bool = False
    spool_dir: str = ""  # the slot this Recorder uses (see spool.open_spool)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


class Counters:
    """Monotonic counters shared by the app threads, the sender and Kafka's I/O thread."""

    NAMES = (
        "recorded",
        "sent",
        "spooled",
        "replayed",
        "tag_conflicts",
        "producer_restarts",
        "sender_errors",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def drop(self, reason: str, amount: int = 1) -> None:
        with self._lock:
            self._dropped[reason] += amount

    def snapshot(self, **gauges: int | bool | str) -> RecorderStats:
        with self._lock:
            values = {name: self._values[name] for name in self.NAMES}
            dropped = dict(self._dropped)
        return RecorderStats(dropped=dropped, **values, **gauges)  # type: ignore[arg-type]


class StatsCollector(Collector):
    """Exposes a Recorder's stats to prometheus_client at scrape time (no cost per event).

    Register with ``registry.register(StatsCollector(recorder.stats))``; ``Recorder`` does this
    when given ``prometheus_registry=``.
    """

    def __init__(self, stats: Callable[[], RecorderStats], prefix: str = "spendstream_producer"):
        self._stats = stats
        self._prefix = prefix

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = self._stats()
        for name in Counters.NAMES:
            yield CounterMetricFamily(
                f"{self._prefix}_{name}",
                f"spendstream producer: {name}",
                value=getattr(stats, name),
            )
        dropped = CounterMetricFamily(
            f"{self._prefix}_dropped", "spendstream producer: events dropped", labels=["reason"]
        )
        for reason, value in sorted(stats.dropped.items()):
            dropped.add_metric([reason], value)
        yield dropped
        yield GaugeMetricFamily(f"{self._prefix}_queued", "events waiting in memory", stats.queued)
        yield GaugeMetricFamily(
            f"{self._prefix}_spool_bytes", "bytes in the disk spool", stats.spool_bytes
        )
