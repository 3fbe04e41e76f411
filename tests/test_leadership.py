"""The evaluator lease on one ClickHouse (chDB serving HTTP): one holder among competitors, a
clean release hands over at once, and a holder that cannot renew fences itself in time."""

from __future__ import annotations

import threading
import time

import pytest

from spendstream.leadership import Elector, Fence, LeaseStore
from spendstream.sinks.client import connect
from tests.support.chdb_http import ChdbHttpServer
from tests.support.worker import wait_until

pytestmark = pytest.mark.integration

TTL_S, RENEW_S = 2.0, 0.4


class Recorder:
    """A leader role that records its terms."""

    def __init__(self) -> None:
        self.fences: list[Fence] = []
        self.running = threading.Event()

    def start(self, fence: Fence) -> None:
        self.fences.append(fence)
        self.running.set()

    def stop(self) -> None:
        self.running.clear()


def elector(dsn: str, role: Recorder, name: str) -> Elector:
    store = LeaseStore(connect(dsn, "spendstream"))
    return Elector(store, "evaluator", [role], TTL_S, RENEW_S, holder=name)


def test_one_holder_and_clean_handover(clickhouse_server: ChdbHttpServer) -> None:
    roles = [Recorder() for _ in range(4)]
    electors = [elector(clickhouse_server.dsn, role, f"w{i}") for i, role in enumerate(roles)]
    for each in electors:
        each.start()
    try:
        wait_until(lambda: any(r.running.is_set() for r in roles), 30, "a leader")
        deadline = time.monotonic() + 3 * TTL_S
        while time.monotonic() < deadline:  # never two at once, and the same one throughout
            assert sum(r.running.is_set() for r in roles) == 1
            time.sleep(0.05)
        first = next(i for i, r in enumerate(roles) if r.running.is_set())
        assert [len(r.fences) for r in roles].count(1) == 1
        fence = roles[first].fences[0]
        assert fence.term == 1 and fence.valid()

        released = time.monotonic()
        electors[first].stop()  # releases the lease
        assert not roles[first].running.is_set() and not fence.valid()
        wait_until(lambda: any(r.running.is_set() for r in roles), 30, "a successor")
        # Released, not expired: the successor did not wait out the lease.
        assert time.monotonic() - released < TTL_S
        successor = next(i for i, r in enumerate(roles) if r.running.is_set())
        assert successor != first and roles[successor].fences[-1].term == 2
    finally:
        for each in electors:
            each.stop()


def test_holder_that_cannot_renew_fences_itself(clickhouse_server: ChdbHttpServer) -> None:
    role = Recorder()
    holder = elector(clickhouse_server.dsn, role, "lonely")
    holder.start()
    try:
        wait_until(role.running.is_set, 30, "leadership")
        fence = role.fences[0]
        clickhouse_server.stop()  # ClickHouse unreachable: no renewal can succeed
        lost = time.monotonic()
        wait_until(lambda: not fence.valid(), 3 * TTL_S, "the fence to lapse")
        # Authority ends before a successor could claim (TTL after the last renewal).
        assert time.monotonic() - lost < TTL_S
        wait_until(lambda: not role.running.is_set(), 3 * TTL_S, "the role to stop")
        clickhouse_server.start()
        wait_until(role.running.is_set, 30, "leadership again")
        assert role.fences[-1].term == 2  # a new term: the old fence stays invalid
        assert not fence.valid()
    finally:
        holder.stop()
