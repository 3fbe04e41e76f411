"""Spool slots that no live process holds but that still hold events: found and replayed.

A process that dies (a forked child that spooled during an outage and exited, a crash, a
container that never starts again) leaves its slot under ``spool_dir`` with undelivered records.
:func:`~spendstream.producers.spool.open_spool` only replays the one slot it takes, so without
this a slot other than the first free one waited until enough Recorders ran at the same time to
take it. The sender adopts such a slot (its ``flock`` is free, so its owner is gone) and replays
it behind its own spool; a slot whose owner lives stays locked and is never touched.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from spendstream.producers.log import get_logger
from spendstream.producers.spool import Spool, SpoolBusy, slot_path

SCAN_INTERVAL_S = 10.0  # how often a living Recorder looks for slots a dead process left
_SLOT_NAME = re.compile(r"slot-([1-9][0-9]*)")

log = get_logger(__name__)


class OrphanSlots:
    """The slots under ``base`` other than ``own`` that hold records and that nobody holds.

    Used by the sender thread only. At most one slot is adopted (locked) at a time; it is
    released once drained, on ``release()`` (the sender stopping) and, untouched, in a fork
    child (``abandon_in_child``).
    """

    def __init__(
        self,
        base: str | Path,
        own: Path,
        max_bytes: int,
        fsync_interval_s: float,
        on_corrupt: Callable[[int], None] | None = None,
        scan_interval_s: float = SCAN_INTERVAL_S,
    ) -> None:
        self.base = Path(base)
        self.own = own
        self.max_bytes = max_bytes
        self.fsync_interval_s = fsync_interval_s
        self.on_corrupt = on_corrupt
        self.scan_interval_s = scan_interval_s
        self.adopted: Spool | None = None
        self._next_scan = 0.0  # the first scan runs as soon as the broker is reachable

    def next_spool(self) -> Spool | None:
        """The adopted slot while it holds records, else (at most every interval) a new one."""
        if self.adopted is not None:
            if self.adopted.pending():
                return self.adopted
            log.info("orphan_slot_replayed", slot=str(self.adopted.directory))
            self.release()
            self._next_scan = 0.0  # another dead slot may be waiting: look at once
        if time.monotonic() < self._next_scan:
            return None
        self._next_scan = time.monotonic() + self.scan_interval_s
        for directory in self._candidates():
            spool = self._try_open(directory)
            if spool is not None:
                log.info("orphan_slot_adopted", slot=str(directory))
                self.adopted = spool
                return spool
        return None

    def release(self) -> None:
        """Unlock the adopted slot; what was not committed stays there for the next Recorder."""
        spool, self.adopted = self.adopted, None
        if spool is not None:
            spool.close()

    def abandon_in_child(self) -> None:
        """In a forked child: drop the inherited descriptors, leaving the parent's lock alone."""
        spool, self.adopted = self.adopted, None
        if spool is not None:
            spool.abandon_in_child()

    def _candidates(self) -> list[Path]:
        """Slot directories (the base first) holding at least one segment file, but ours."""
        numbers: list[int] = [0]
        try:
            for entry in self.base.iterdir():
                match = _SLOT_NAME.fullmatch(entry.name)
                if match and entry.is_dir():
                    numbers.append(int(match.group(1)))
        except OSError:
            return []
        slots = [slot_path(self.base, number) for number in sorted(numbers)]
        return [slot for slot in slots if slot != self.own and _has_segments(slot)]

    def _try_open(self, directory: Path) -> Spool | None:
        try:
            spool = Spool(
                directory,
                self.max_bytes,
                fsync_interval_s=self.fsync_interval_s,
                on_corrupt=self.on_corrupt,
            )
        except SpoolBusy:
            return None  # its process lives (or another Recorder adopted it)
        except OSError as exc:
            log.warning("orphan_slot_unreadable", slot=str(directory), error=repr(exc))
            return None
        if spool.pending():
            return spool
        spool.close()
        return None


def _has_segments(directory: Path) -> bool:
    try:
        return next(directory.glob("segment-*.spool"), None) is not None
    except OSError:
        return False
