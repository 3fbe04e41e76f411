"""Leases on ClickHouse: who holds a named role, in which term, and since when (server time).

All times that decide expiry are ClickHouse's (``now64``), so clocks of worker hosts never
matter; a holder fences itself with its own monotonic clock (see :mod:`.elector`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from clickhouse_connect.driver.client import Client

STATE_SQL = """
WITH (SELECT max(term) FROM leader_terms WHERE name = {name:String}) AS latest
SELECT
    latest,
    (SELECT argMin(holder, (acquired_at, holder)) FROM leader_terms
        WHERE name = {name:String} AND term = latest),
    greatest(
        (SELECT max(acquired_at) FROM leader_terms WHERE name = {name:String} AND term = latest),
        (SELECT max(renewed_at) FROM leader_renewals WHERE name = {name:String} AND term = latest)
    ),
    (SELECT max(released) FROM leader_renewals WHERE name = {name:String} AND term = latest),
    now64(3)
"""

CLAIM_SQL = (
    "INSERT INTO leader_terms (name, term, holder, acquired_at) "
    "SELECT {name:String}, {term:UInt64}, {holder:String}, now64(3)"
)
WINNER_SQL = (
    "SELECT argMin(holder, (acquired_at, holder)) FROM leader_terms "
    "WHERE name = {name:String} AND term = {term:UInt64}"
)
RENEW_SQL = (
    "INSERT INTO leader_renewals (name, term, holder, renewed_at, released) "
    "SELECT {name:String}, {term:UInt64}, {holder:String}, now64(3), {released:UInt8}"
)


@dataclass(frozen=True)
class LeaseState:
    """The latest term of a role (0: never held), its holder, and how long ago it was renewed."""

    term: int
    holder: str
    silent_for: timedelta
    released: bool

    def expired(self, ttl: timedelta) -> bool:
        """Free to claim: never held, released, or not renewed for longer than ``ttl``."""
        return self.term == 0 or self.released or self.silent_for > ttl


class LeaseStore:
    """Reads and claims leases. Blocking (clickhouse-connect): call from one thread."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def state(self, name: str) -> LeaseState:
        term, holder, renewed_at, released, now = self.client.query(
            STATE_SQL, parameters={"name": name}
        ).result_rows[0]
        if not term:
            return LeaseState(0, "", timedelta.max, False)
        return LeaseState(int(term), str(holder), now - renewed_at, bool(released))

    def claim(self, name: str, term: int, holder: str) -> bool:
        """Try to take ``term``; True when this ``holder`` won it (exactly one claimant does)."""
        params = {"name": name, "term": term, "holder": holder}
        self.client.command(
            CLAIM_SQL,
            parameters=params,
            settings={"insert_deduplication_token": f"{name}:{term}"},
        )
        winner = self.client.query(WINNER_SQL, parameters=params).result_rows
        return bool(winner) and winner[0][0] == holder

    def renew(self, name: str, term: int, holder: str, released: bool = False) -> None:
        """Record a heartbeat of ``term`` (or its release, letting a successor claim at once)."""
        self.client.command(
            RENEW_SQL,
            parameters={"name": name, "term": term, "holder": holder, "released": int(released)},
            # Unique token: a replicated table would otherwise drop identical-looking blocks.
            settings={"insert_deduplication_token": f"renew:{uuid.uuid4().hex}"},
        )
