"""Row versions for ReplacingMergeTree tables: strictly increasing within a process."""

from __future__ import annotations

import threading
import time

_version_lock = threading.Lock()
_last_version = 0


def next_version() -> int:
    """A strictly increasing row version (nanoseconds since the epoch, bumped on ties)."""
    global _last_version
    with _version_lock:
        _last_version = max(_last_version + 1, time.time_ns())
        return _last_version
