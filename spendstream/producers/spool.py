"""Append-only disk spool: where events wait while the broker cannot take them.

On-disk format (directory ``spool_dir``):

- ``segment-NNNNNNNNNN.spool``: records, each ``magic "S1" | u32 body length | u16 key length |
  u32 CRC-32 of body | body`` where body = key + value (big-endian). A process only ever appends
  to a segment it created itself, so a record torn by a crash can only sit at the tail of an old
  segment; the reader skips such a tail (and any record whose CRC does not match), counting it.
- ``cursor.json``: the position up to which records were delivered (replaced atomically).

Durability (fsync policy): every append is written to the OS at once (a single ``os.write``), so
records survive the process being killed (SIGKILL, OOM). Segment data is fsynced at most every
``fsync_interval_s`` seconds (0 = on every append) and on close, so an OS crash or power loss can
lose up to that interval. The cursor is not fsynced: losing it re-sends delivered records, which
the ledger deduplicates by event_id (duplicates are allowed, losses are not).

One spool directory belongs to one process at a time (an exclusive ``flock`` on ``lock``, released
by the OS when the process dies). :func:`open_spool` takes the first free slot: ``spool_dir``
itself, then ``spool_dir/slot-1``, ``slot-2``, ...; so several processes can share one configured
``spool_dir``, and a restarted process takes over (and replays) the slot of a dead one. The other
slots a dead process left with records are replayed too, one at a time, by whichever Recorder
finds them free (:mod:`.orphans`).

The total size is capped at ``max_bytes``; appends beyond the cap are refused and the caller counts
them as ``dropped{reason="spool_full"}``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spendstream.errors import ConflictError, UnavailableError
from spendstream.producers.log import get_logger

HEADER = struct.Struct(">2sIHI")
MAGIC = b"S1"
MAX_BODY = 1 << 20  # far above MAX_EVENT_BYTES; a larger length means a torn or corrupt header
CURSOR_FILE = "cursor.json"
LOCK_FILE = "lock"
MAX_SLOTS = 256

log = get_logger(__name__)


class SpoolBusy(ConflictError, RuntimeError):
    """Another process (or Recorder) holds this spool directory."""


class SpoolLockTimeout(UnavailableError, TimeoutError):
    """The spool lock could not be taken within the caller's time bound."""


@dataclass(frozen=True, order=True)
class Position:
    segment: int
    offset: int


@dataclass(frozen=True)
class SpoolRecord:
    key: bytes | None
    value: bytes
    end: Position  # commit this to mark the record (and all before it) delivered


def encode(key: bytes | None, value: bytes) -> bytes:
    body = (key or b"") + value
    return HEADER.pack(MAGIC, len(body), len(key or b""), zlib.crc32(body)) + body


class Spool:
    """Thread-safe spool: any thread may append; one consumer reads and commits, in order."""

    def __init__(
        self,
        directory: str | Path,
        max_bytes: int,
        segment_bytes: int | None = None,
        fsync_interval_s: float = 1.0,
        on_corrupt: Callable[[int], None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise SpoolBusy(f"spool directory {self.directory} is in use") from None
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(4096, min(16 << 20, max_bytes // 8))
        self.fsync_interval_s = fsync_interval_s
        self._on_corrupt = on_corrupt
        self._lock = threading.Lock()
        self._sizes: dict[int, int] = {
            int(path.stem.split("-")[1]): path.stat().st_size
            for path in self.directory.glob("segment-*.spool")
        }
        self._active: int | None = None  # segment this process appends to
        self._fd: int | None = None
        self._retired: list[int] = []  # fds of finished segments awaiting fsync + close
        self._dirty = False
        self._last_sync = time.monotonic()
        self._cursor = self._load_cursor()
        self._drop_before(self._cursor.segment)

    # -- appending (any thread) ---------------------------------------------------------------

    def append(self, items: Sequence[tuple[bytes | None, bytes]], lock_timeout: float = -1) -> int:
        """Append records in order; returns how many fit under ``max_bytes`` (a prefix).

        The lock is held only for the size check and one ``os.write``; encoding and fsync happen
        outside it, so an app thread spilling here is not stuck behind the sender.

        Raises:
            SpoolLockTimeout: the lock was not free within ``lock_timeout`` seconds.
        """
        records = [encode(key, value) for key, value in items]
        if not self._lock.acquire(timeout=lock_timeout):
            raise SpoolLockTimeout("spool busy")
        try:
            room = self.max_bytes - sum(self._sizes.values())
            fitting = 0
            for record in records:
                if len(record) > room:
                    break
                room -= len(record)
                fitting += 1
            if fitting:
                self._write(b"".join(records[:fitting]))
        finally:
            self._lock.release()
        if fitting and self.fsync_interval_s <= 0:
            self.sync(force=True)
        return fitting

    def _write(self, data: bytes) -> None:
        if self._fd is None or self._sizes[self._active or 0] >= self.segment_bytes:
            self._rotate()
        assert self._fd is not None and self._active is not None
        os.write(self._fd, data)
        self._sizes[self._active] += len(data)
        self._dirty = True

    def _rotate(self) -> None:
        self._retire_fd()
        self._active = max(self._sizes, default=self._cursor.segment - 1) + 1
        self._active = max(self._active, self._cursor.segment)
        path = self._segment_path(self._active)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._sizes[self._active] = 0

    # -- reading and committing (the one consumer) ---------------------------------------------

    def read(self, max_records: int, max_bytes: int = 4 << 20) -> list[SpoolRecord]:
        """Up to ``max_records`` undelivered records, oldest first, starting at the cursor.

        Reads stop at the end of a segment; the next call (after ``commit``) continues.
        """
        records: list[SpoolRecord] = []
        while len(records) < max_records:
            with self._lock:
                start = records[-1].end if records else self._cursor
                if start.segment not in self._sizes:
                    later = [seq for seq in self._sizes if seq > start.segment]
                    if records or not later:
                        break
                    start = Position(min(later), 0)
                limit = self._sizes[start.segment]
                sealed = start.segment != self._active
            budget = max_bytes - sum(len(r.value) for r in records)
            found = self._read_segment(
                start.segment, start.offset, limit, max_records - len(records), budget
            )
            records.extend(found)
            if found or not sealed:
                break
            # A sealed segment with nothing readable left: past its end, or a torn tail.
            self._skip_segment(start.segment, start.offset, limit)
        return records

    def _read_segment(
        self, segment: int, offset: int, limit: int, max_records: int, budget: int
    ) -> list[SpoolRecord]:
        records: list[SpoolRecord] = []
        with self._segment_path(segment).open("rb") as handle:
            handle.seek(offset)
            while offset < limit and len(records) < max_records and budget > 0:
                header = handle.read(HEADER.size)
                if len(header) < HEADER.size:
                    break
                magic, length, key_length, crc = HEADER.unpack(header)
                if magic != MAGIC or length > MAX_BODY or offset + HEADER.size + length > limit:
                    break  # torn tail: _skip_segment reports it
                body = handle.read(length)
                offset += HEADER.size + length
                if len(body) < length:
                    break
                if zlib.crc32(body) != crc:
                    log.error("spool_record_corrupt", segment=segment, offset=offset)
                    if self._on_corrupt:
                        self._on_corrupt(1)
                    self._advance_in_place(segment, offset, records)
                    continue
                key = body[:key_length] or None
                records.append(SpoolRecord(key, body[key_length:], Position(segment, offset)))
                budget -= length
        return records

    def _advance_in_place(self, segment: int, offset: int, records: list[SpoolRecord]) -> None:
        # A corrupt record with nothing readable before it: move the cursor past it now.
        if not records:
            self.commit(Position(segment, offset))

    def _skip_segment(self, segment: int, reached: int, limit: int) -> None:
        if reached < limit:
            log.error(
                "spool_torn_tail_skipped",
                segment=segment,
                offset=reached,
                lost_bytes=limit - reached,
            )
            if self._on_corrupt:
                self._on_corrupt(1)
        self.commit(Position(segment, limit))

    def commit(self, position: Position) -> None:
        """Mark everything up to ``position`` delivered; deletes segments fully behind it."""
        with self._lock:
            cursor = position
            if position.segment != self._active and position.offset >= self._sizes.get(
                position.segment, 0
            ):
                later = [seq for seq in self._sizes if seq > position.segment]
                cursor = Position(min(later), 0) if later else Position(position.segment + 1, 0)
            elif (
                position.segment == self._active
                and position.offset >= self._sizes[position.segment]
            ):
                # Fully drained: drop the active segment too; the next append starts a new one.
                self._retire_fd()
                cursor = Position(position.segment + 1, 0)
            self._cursor = cursor
            self._drop_before(cursor.segment)
            self._store_cursor()

    def pending(self) -> bool:
        """Whether undelivered records remain."""
        with self._lock:
            return any(
                seq > self._cursor.segment or size > self._cursor.offset
                for seq, size in self._sizes.items()
                if seq >= self._cursor.segment
            )

    def size_bytes(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    # -- durability ----------------------------------------------------------------------------

    def sync(self, force: bool = False) -> None:
        """fsync appended data if the policy's interval has passed (or ``force``).

        The fsync runs outside the lock, on duplicated descriptors.
        """
        with self._lock:
            due = force or time.monotonic() - self._last_sync >= self.fsync_interval_s
            if not due or not (self._dirty or self._retired):
                return
            fds, self._retired = self._retired, []
            if self._fd is not None and self._dirty:
                fds.append(os.dup(self._fd))
            self._dirty = False
            self._last_sync = time.monotonic()
        for fd in fds:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def close(self) -> None:
        """fsync, close, and release the directory for another process."""
        with self._lock:
            self._retire_fd()
        self.sync(force=True)
        with self._lock:
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = -1

    def abandon_in_child(self) -> None:
        """In a forked child: close the inherited descriptors, touching no file and no lock.

        The flock stays with the parent (it is released only when every copy of the descriptor
        is closed), and ``self._lock`` is not taken: another thread may have held it at fork.
        """
        fds = [self._lock_fd, *self._retired] + ([self._fd] if self._fd is not None else [])
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._lock_fd, self._fd, self._retired = -1, None, []

    # -- helpers (lock held) -------------------------------------------------------------------

    def _retire_fd(self) -> None:
        """Stop appending to the active segment; its fd is fsynced and closed by sync()."""
        if self._fd is not None:
            self._retired.append(self._fd)
            self._dirty = True
        self._fd = None
        self._active = None

    def _drop_before(self, segment: int) -> None:
        for seq in [seq for seq in self._sizes if seq < segment]:
            self._segment_path(seq).unlink(missing_ok=True)
            del self._sizes[seq]

    def _segment_path(self, segment: int) -> Path:
        return self.directory / f"segment-{segment:010d}.spool"

    def _load_cursor(self) -> Position:
        path = self.directory / CURSOR_FILE
        try:
            data = json.loads(path.read_text())
            return Position(int(data["segment"]), int(data["offset"]))
        except (OSError, ValueError, KeyError, TypeError):
            return Position(min(self._sizes, default=0), 0)

    def _store_cursor(self) -> None:
        path = self.directory / CURSOR_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"segment": self._cursor.segment, "offset": self._cursor.offset}))
        os.replace(tmp, path)


def slot_path(base: Path, slot: int) -> Path:
    """Slot 0 is ``base`` itself, slot n is ``base/slot-n``."""
    return base if slot == 0 else base / f"slot-{slot}"


def open_spool(directory: str | Path, max_bytes: int, **options: Any) -> Spool:
    """The spool in the first free slot of ``directory`` (see the module docstring)."""
    base = Path(directory)
    for slot in range(MAX_SLOTS):
        try:
            return Spool(slot_path(base, slot), max_bytes, **options)
        except SpoolBusy:
            continue
    raise SpoolBusy(f"all {MAX_SLOTS} spool slots under {base} are in use")
