"""Dead letters: rejected events kept with their payload, the precise reason and their source.

A letter always fits the producer's request limit: it is sized by its *encoded* JSON bytes
(``MAX_LETTER_BYTES``), not by the payload's raw length, because JSON escaping can grow text up
to six times (``\\u0001``). The whole original always stays at its source offset.

Letters are published at least once: after a crash the batch replays and its letters are
published again. Deduplicate by ``(source_topic, source_partition, source_offset,
source_index)`` (also the letter's Kafka key), see docs/failure-model.md.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

from pydantic import BaseModel, Field

# The producer's default request limit is 1,000,000 bytes (aiokafka 1 MiB); a letter stays well
# under it whatever its payload and reason hold.
MAX_LETTER_BYTES = 768 * 1024
# Raw payload bytes a letter keeps at most: base64 of this (4/3) plus framing fits the letter.
MAX_KEPT_PAYLOAD_BYTES = 384 * 1024
MAX_REASON_CHARS = 2_000
# Below this raw size even the worst escaping (6x) cannot exceed the letter limit: skip measuring.
_SURELY_FITS_BYTES = (MAX_LETTER_BYTES - 6 * MAX_REASON_CHARS - 4096) // 6


class DeadLetter(BaseModel):
    """One rejected event as published on the dead-letter topic (JSON).

    ``payload`` is the raw value as UTF-8 text when it is valid UTF-8 and the letter's encoded
    JSON fits ``MAX_LETTER_BYTES``; otherwise ``payload_base64`` holds the first (at most
    ``MAX_KEPT_PAYLOAD_BYTES``) bytes exactly, with ``payload_truncated`` set when cut.
    ``payload_bytes`` and ``payload_sha256`` describe the whole original.
    """

    reason: str
    payload: str | None = None
    payload_base64: str | None = None
    source_topic: str
    source_partition: int
    source_offset: int
    source_index: int | None = None  # line of a multi-event (NDJSON) message
    payload_bytes: int = 0
    payload_sha256: str = ""
    payload_truncated: bool = False
    failed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def for_payload(
        cls,
        raw: bytes,
        reason: str,
        topic: str,
        partition: int,
        offset: int,
        index: int | None = None,
    ) -> DeadLetter:
        base = cls(
            reason=reason[:MAX_REASON_CHARS],
            source_topic=topic,
            source_partition=partition,
            source_offset=offset,
            source_index=index,
            payload_bytes=len(raw),
            payload_sha256=hashlib.sha256(raw).hexdigest(),
        )
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            text = None
        if text is not None:
            letter = base.model_copy(update={"payload": text})
            if len(raw) <= _SURELY_FITS_BYTES or letter.encoded_size() <= MAX_LETTER_BYTES:
                return letter
        kept = raw[:MAX_KEPT_PAYLOAD_BYTES]
        return base.model_copy(
            update={
                "payload_base64": base64.b64encode(kept).decode(),
                "payload_truncated": len(kept) < len(raw),
            }
        )

    def encoded(self) -> bytes:
        """The letter as published (compact UTF-8 JSON)."""
        return self.model_dump_json().encode()

    def encoded_size(self) -> int:
        return len(self.encoded())

    def raw_payload(self) -> bytes:
        """The original message bytes (their first part when ``payload_truncated``)."""
        if self.payload_base64 is not None:
            return base64.b64decode(self.payload_base64)
        return (self.payload or "").encode()

    def dedup_key(self) -> tuple[str, int, int, int | None]:
        """What identifies the rejected line: a replayed batch republishes the same key."""
        return (self.source_topic, self.source_partition, self.source_offset, self.source_index)

    def without_payload(self) -> DeadLetter:
        """The letter with its payload dropped (``payload_truncated``): the last resort when
        the broker keeps refusing it; the original stays at its source offset."""
        return self.model_copy(
            update={"payload": None, "payload_base64": None, "payload_truncated": True}
        )
