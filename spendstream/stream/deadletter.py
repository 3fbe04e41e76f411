"""Dead letters: malformed events kept with their raw payload and the precise reason."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from pydantic import BaseModel, Field


class DeadLetter(BaseModel):
    """One rejected message as published on the dead-letter topic (JSON).

    ``payload`` is the raw value decoded as UTF-8 when possible; otherwise ``payload_base64``
    holds the exact bytes. Nothing of the original is lost.
    """

    reason: str
    payload: str | None = None
    payload_base64: str | None = None
    source_topic: str
    source_partition: int
    source_offset: int
    source_index: int | None = None  # line of a multi-event (NDJSON) message
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
        try:
            text: str | None = raw.decode()
            encoded = None
        except UnicodeDecodeError:
            text, encoded = None, base64.b64encode(raw).decode()
        return cls(
            reason=reason,
            payload=text,
            payload_base64=encoded,
            source_topic=topic,
            source_partition=partition,
            source_offset=offset,
            source_index=index,
        )

    def raw_payload(self) -> bytes:
        """The original message bytes."""
        if self.payload_base64 is not None:
            return base64.b64decode(self.payload_base64)
        return (self.payload or "").encode()
