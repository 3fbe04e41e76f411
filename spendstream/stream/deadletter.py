"""Dead letters: malformed events kept with their raw payload and the precise reason."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

from pydantic import BaseModel, Field

# A dead letter must fit the producer's request limit (1 MiB by default) with its JSON framing and
# base64 growth; larger payloads are cut, and the letter says where the whole original lives.
MAX_KEPT_PAYLOAD_BYTES = 512 * 1024


class DeadLetter(BaseModel):
    """One rejected message as published on the dead-letter topic (JSON).

    ``payload`` is the raw value decoded as UTF-8 when possible; otherwise ``payload_base64``
    holds the exact bytes. Payloads over ``MAX_KEPT_PAYLOAD_BYTES`` keep only their first
    ``MAX_KEPT_PAYLOAD_BYTES`` (``payload_truncated``), with the full size and SHA-256; the whole
    original stays readable at ``source_topic``/``source_partition``/``source_offset``.
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
        kept = raw[:MAX_KEPT_PAYLOAD_BYTES]
        try:
            text: str | None = kept.decode()
            encoded = None
        except UnicodeDecodeError:
            text, encoded = None, base64.b64encode(kept).decode()
        return cls(
            reason=reason,
            payload=text,
            payload_base64=encoded,
            source_topic=topic,
            source_partition=partition,
            source_offset=offset,
            source_index=index,
            payload_bytes=len(raw),
            payload_sha256=hashlib.sha256(raw).hexdigest(),
            payload_truncated=len(kept) < len(raw),
        )

    def raw_payload(self) -> bytes:
        """The original message bytes (their first part when ``payload_truncated``)."""
        if self.payload_base64 is not None:
            return base64.b64decode(self.payload_base64)
        return (self.payload or "").encode()
