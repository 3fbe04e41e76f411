"""Wiring outcome events (``kafka.outcome_topic``) into the ``outcomes`` table.

Invalid lines are dead-lettered (same topic and letter format as usage events); valid ones are
written in one INSERT, retried with backoff until ClickHouse takes it, so a batch is only
acknowledged once stored (the insert is idempotent: dedup token + ``FINAL``).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from clickhouse_connect.driver.exceptions import ClickHouseError

from spendstream.events import OutcomeEvent
from spendstream.insights.outcomes import OutcomeStore
from spendstream.logs import get_logger
from spendstream.stream.app import KafkaDeadLetters
from spendstream.stream.deadletter import DeadLetter
from spendstream.stream.processor import RawMessage

log = get_logger(__name__)


class OutcomeHandler:
    def __init__(
        self, store: OutcomeStore, dead_letters: KafkaDeadLetters, retry_max_s: float
    ) -> None:
        self.store = store
        self.dead_letters = dead_letters
        self.retry_max_s = retry_max_s
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="spendstream-outcomes")

    async def handle(self, messages: list[RawMessage]) -> None:
        good: list[tuple[OutcomeEvent, int, int]] = []
        letters: list[DeadLetter] = []
        for message in messages:
            for index, payload in message.payloads():
                parsed = self.store.parse(payload)
                if isinstance(parsed, OutcomeEvent):
                    good.append((parsed, message.partition, message.offset))
                    continue
                line = index if message.ndjson else None
                letters.append(
                    DeadLetter.for_payload(
                        payload, parsed, message.topic, message.partition, message.offset, line
                    )
                )
        if letters:
            await self.dead_letters.publish(letters)
        delay = 0.5
        while True:
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._executor, self.store.write, good
                )
                return
            except (OSError, ClickHouseError) as exc:
                log.warning("outcomes not written; retrying", error=str(exc)[:200], retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
