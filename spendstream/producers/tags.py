"""Scoped default tags and the merge rule for an event's tags.

Layers, lowest to highest precedence::

    recorder defaults  <  outer ``tags()`` scope  <  inner ``tags()`` scope  <  per-call tags

A key set in several layers with the *same* value is fine. A key set with *different* values is a
conflict: the higher layer wins (the rule above), the conflict is counted, and a warning
is logged once per ``(key, losing value, winning value)``. Nothing is overwritten silently.

Scopes live in a :class:`contextvars.ContextVar`, so they follow threads and asyncio tasks the way
``contextvars`` does (each thread starts empty; tasks inherit their creator's scopes).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

from spendstream.producers.log import get_logger

TagLayer = Mapping[str, str]

_SCOPES: ContextVar[tuple[TagLayer, ...]] = ContextVar("spendstream_tag_scopes", default=())
_MAX_WARNED = 10_000  # bound the memory of "already warned" conflict triples

log = get_logger(__name__)


@contextmanager
def tags(**values: str) -> Iterator[None]:
    """Add default tags to every event recorded inside the ``with`` block (any Recorder).

    >>> with tags(team="search", feature="qa"):
    ...     recorder.record(provider="openai", model="gpt-4o", usage=response)
    """
    token = _SCOPES.set((*_SCOPES.get(), dict(values)))
    try:
        yield
    finally:
        _SCOPES.reset(token)


def current_scopes() -> tuple[TagLayer, ...]:
    """The active ``tags()`` scopes, outermost first."""
    return _SCOPES.get()


class TagMerger:
    """Merges the tag layers of one event and reports conflicts (thread-safe)."""

    def __init__(
        self, defaults: TagLayer | None = None, on_conflict: Callable[[], None] | None = None
    ) -> None:
        self.defaults: dict[str, str] = dict(defaults or {})
        self._on_conflict = on_conflict
        self._warned: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def merge(self, call_tags: TagLayer | None) -> dict[str, str]:
        """The event's tags: all layers merged by precedence (see the module docstring)."""
        scopes = _SCOPES.get()
        if not scopes and not call_tags:
            return dict(self.defaults)
        merged = dict(self.defaults)
        for layer in (*scopes, call_tags or {}):
            for key, value in layer.items():
                previous = merged.get(key)
                if previous is not None and previous != value:
                    self._conflict(key, previous, value)
                merged[key] = value
        return merged

    def _conflict(self, key: str, loser: str, winner: str) -> None:
        if self._on_conflict is not None:
            self._on_conflict()
        triple = (key, loser, winner)
        with self._lock:
            if triple in self._warned or len(self._warned) >= _MAX_WARNED:
                return
            self._warned.add(triple)
        log.warning(
            "tag_conflict",
            key=key,
            overridden=loser,
            kept=winner,
            rule="per-call > inner scope > outer scope > recorder defaults",
        )
