"""Disk spool: order, restart, crash tails, corruption, size cap."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spendstream.producers.orphans import OrphanSlots
from spendstream.producers.partitioning import pack_by_key
from spendstream.producers.spool import HEADER, Spool, SpoolBusy, SpoolRecord, open_spool


def items(start: int, stop: int) -> list[tuple[bytes | None, bytes]]:
    return [
        (f"k{i}".encode() if i % 2 else None, f"value-{i}".encode()) for i in range(start, stop)
    ]


def drain(spool: Spool, batch: int = 7) -> list[SpoolRecord]:
    out: list[SpoolRecord] = []
    while records := spool.read(batch):
        out.extend(records)
        spool.commit(records[-1].end)
    return out


def crash(spool: Spool) -> None:
    """What a killed process leaves: open files closed by the OS, nothing flushed or fsynced."""
    for fd in (spool._fd, spool._lock_fd):
        if fd is not None and fd >= 0:
            os.close(fd)


def values(records: list[SpoolRecord]) -> list[bytes]:
    return [record.value for record in records]


def test_records_come_back_in_order_across_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=200)
    for start in range(0, 100, 10):
        assert spool.append(items(start, start + 10)) == 10
    assert len(list(tmp_path.glob("segment-*"))) > 3  # rotation happened
    records = drain(spool)
    assert values(records) == [v for _, v in items(0, 100)]
    assert [r.key for r in records[:2]] == [None, b"k1"]
    assert not spool.pending()
    assert list(tmp_path.glob("segment-*")) == []  # fully delivered segments are deleted
    spool.append(items(100, 105))  # appending after a full drain works
    assert values(drain(spool)) == [v for _, v in items(100, 105)]


def test_uncommitted_records_survive_a_restart_and_committed_ones_do_not(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=300)
    spool.append(items(0, 50))
    first = spool.read(20)
    spool.commit(first[-1].end)
    spool.read(10)  # read but never committed: must come back
    crash(spool)
    reopened = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=300)
    assert reopened.pending()
    assert values(drain(reopened)) == [v for _, v in items(20, 50)]


def test_torn_tail_from_a_crash_is_skipped_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(items(0, 5))
    spool.close()
    segment = next(tmp_path.glob("segment-*"))
    with segment.open("ab") as handle:  # a record cut short mid-write
        handle.write(HEADER.pack(b"S1", 100, 0, 0) + b"partial")
    corrupt: list[int] = []
    reopened = Spool(tmp_path, max_bytes=1 << 20, on_corrupt=corrupt.append)
    reopened.append(items(5, 8))  # new appends go to a new segment, after the torn one
    assert values(drain(reopened)) == [v for _, v in items(0, 8)]
    assert corrupt == [1]


def test_checksum_mismatch_skips_only_that_record(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(items(0, 3))
    spool.close()
    segment = next(tmp_path.glob("segment-*"))
    data = bytearray(segment.read_bytes())
    first_length = HEADER.unpack(bytes(data[: HEADER.size]))[1]
    second_body = HEADER.size + first_length + HEADER.size
    data[second_body] ^= 0xFF  # flip a byte in the second record's body
    segment.write_bytes(bytes(data))
    corrupt: list[int] = []
    reopened = Spool(tmp_path, max_bytes=1 << 20, on_corrupt=corrupt.append)
    assert values(drain(reopened)) == [b"value-0", b"value-2"]
    assert sum(corrupt) >= 1


def test_size_cap_refuses_appends_beyond_max_bytes(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=2048)
    appended = spool.append([(None, b"x" * 100)] * 50)
    assert 0 < appended < 50
    assert spool.size_bytes() <= 2048
    assert spool.append([(None, b"x" * 100)]) == 0
    assert len(drain(spool)) == appended


def test_one_process_per_spool_directory_extra_recorders_take_slots(tmp_path: Path) -> None:
    first = open_spool(tmp_path, max_bytes=1 << 20)
    with pytest.raises(SpoolBusy):
        Spool(tmp_path, max_bytes=1 << 20)
    second = open_spool(tmp_path, max_bytes=1 << 20)
    assert (first.directory, second.directory) == (tmp_path, tmp_path / "slot-1")
    second.append(items(0, 3))
    second.close()  # like a process that died with events spooled: the slot is free again
    third = open_spool(tmp_path, max_bytes=1 << 20)
    assert third.directory == tmp_path / "slot-1"
    assert values(drain(third)) == [v for _, v in items(0, 3)]
    first.close()
    third.close()


def test_orphan_slots_adopts_only_free_slots_with_records_one_at_a_time(tmp_path: Path) -> None:
    own = open_spool(tmp_path, max_bytes=1 << 20)
    own.append(items(0, 2))  # ours: never adopted
    live = open_spool(tmp_path, max_bytes=1 << 20)  # slot-1, its process alive
    live.append(items(2, 4))
    for number, (start, stop) in ((2, (4, 7)), (3, (7, 9))):  # slots of dead processes
        dead = Spool(tmp_path / f"slot-{number}", max_bytes=1 << 20)
        dead.append(items(start, stop))
        crash(dead)
    Spool(tmp_path / "slot-4", max_bytes=1 << 20).close()  # free, nothing in it
    orphans = OrphanSlots(tmp_path, own.directory, 1 << 20, fsync_interval_s=1.0)
    replayed: list[bytes] = []
    while (spool := orphans.next_spool()) is not None:
        replayed.extend(values(drain(spool)))
    assert replayed == [v for _, v in items(4, 9)]  # slot-2 then slot-3, at once
    assert orphans.adopted is None and not list((tmp_path / "slot-2").glob("segment-*"))
    assert orphans.next_spool() is None  # the next scan waits for its interval
    assert open_spool(tmp_path, max_bytes=1 << 20).directory == tmp_path / "slot-2"  # released
    assert values(drain(live)) == [v for _, v in items(2, 4)]
    assert values(drain(own)) == [v for _, v in items(0, 2)]


def test_pack_by_key_keeps_per_key_order_and_limits() -> None:
    items = [(b"a", b"1"), (b"b", b"2"), (b"a", b"3"), (None, b"4"), (b"a", b"5"), (b"a", b"6")]
    packs = pack_by_key(items, max_events=2, max_bytes=1024)
    assert packs == [
        [(b"a", b"1"), (b"a", b"3")],
        [(b"b", b"2")],
        [(None, b"4")],
        [(b"a", b"5"), (b"a", b"6")],
    ]
    big = [(b"k", b"x" * 600), (b"k", b"y" * 600), (b"k", b"z" * 2000)]
    assert [len(pack) for pack in pack_by_key(big, max_events=100, max_bytes=1024)] == [1, 1, 1]
