"""Ledger test data shared by the audit, FOCUS and reprice tests: generated events written
through :class:`LedgerWriter`, as the stream worker writes them."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clickhouse_connect.driver.client import Client

from spendstream.events import UsageEvent
from spendstream.pricing import Pricer, Rating, default_pricer
from spendstream.sinks.ledger import LedgerEntry, LedgerWriter
from spendstream.sinks.price_versions import next_price_version

START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 4
TEAMS = ("search", "support", "growth")
APPS = ("web", "bot")
FEATURES = ("qa", "summarise", "triage")
USERS = ("ann", "bob", "cyd", "")
REQUIRED = ("team", "app")


def generate(count: int, seed: int = 11, start: datetime = START) -> list[UsageEvent]:
    """Events over ``DAYS`` days: cached and batch calls, missing tags, one unknown model."""
    rng = random.Random(seed)
    models = [
        ("anthropic", "claude-sonnet-4-5"),
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4o"),
        ("mistral", "no-such-model"),
    ]
    events = []
    for i in range(count):
        provider, model = models[i % 7 % 4]
        input_tokens = rng.randrange(1, 50_000)
        cache_read = rng.randrange(0, input_tokens // 2 + 1) if i % 3 else 0
        cache_write = rng.randrange(0, (input_tokens - cache_read) // 2 + 1) if i % 4 == 1 else 0
        batch = provider == "anthropic" and i % 10 == 0
        if batch:  # every batch call fully cached: its price has no derivable input rate
            cache_read, cache_write = input_tokens // 2, input_tokens - input_tokens // 2
        tags = {"feature": FEATURES[i % 3], "env": "prod"}
        if i % 6:
            tags["team"] = TEAMS[i % 3]
        if i % 5:
            tags["app"] = APPS[i % 2]
        if USERS[i % 4]:
            tags["user"] = USERS[i % 4]
        output = rng.randrange(0, 4_000)
        events.append(
            UsageEvent(
                event_time=start + timedelta(seconds=rng.randrange(0, DAYS * 86_400)),
                provider=provider,
                model=model,
                input_tokens=input_tokens,
                output_tokens=output,
                cache_read_tokens=cache_read,
                cache_write_tokens=cache_write,
                request_count=1 + i % 3,
                batch=batch,
                tags=tags,
            )
        )
    return events


def fill_ledger(
    client: Client, events: list[UsageEvent], pricer: Pricer | None = None
) -> list[tuple[UsageEvent, Rating]]:
    """Rate ``events`` and write them with :class:`LedgerWriter` (as the stream worker does)."""
    pricer = pricer or default_pricer()
    version = next_price_version(client, "stream", pricer.catalog_digest)
    rated = [(event, pricer.rate(event)) for event in events]
    LedgerWriter(client, version).write([LedgerEntry(event, rating) for event, rating in rated])
    return rated


def write_config(tmp_path: Path, chdb_path: Path, extra: str = "") -> Path:
    path = tmp_path / "spendstream.toml"
    path.write_text(
        f'[clickhouse]\ndsn = "chdb://{chdb_path}"\ndatabase = "spendstream"\n'
        f'[log]\nlevel = "warning"\n{extra}'
    )
    return path
