"""The prompt sightings (migration 76, ``sinks.prompt_sightings``), their repeats (77) and team
repeats (71, ``sinks.team_repeats``), and the reads they and the rollups serve (``caching``'s
repeats, ``embeddings``, ``untagged``): a ledger written by the previous release (no sightings)
is migrated, its totals unchanged, and those insights and the recommendations equal the same
reads of ``ledger FINAL`` to the last digit (whole weeks, periods cut mid-hour and inside one
hour, tight and wide repeat windows, provider and model scopes, team scopes and conditions);
batches written afterwards (late ones, ties in time, one delivered twice, a re-rating) keep them
equal."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from spendstream.advice.recommend import build
from spendstream.config import InsightsSettings
from spendstream.events import UsageEvent
from spendstream.insights import Context, Window, run_insight
from spendstream.pricing import Pricer, default_pricer
from spendstream.pricing.catalog import load_catalog
from spendstream.pricing.overrides import Override
from spendstream.sinks import migrations as ledger_schema
from spendstream.sinks import prompt_sightings
from spendstream.sinks.access import ClientReader
from spendstream.sinks.ledger import REFRESH_STEPS
from spendstream.sinks.prompt_sightings import (
    KEY,
    REFRESH_REPEATS,
    REFRESH_SIGHTINGS,
    REPEAT_HORIZON_S,
    REPEATED,
    REPEATS_TABLE,
    SIGHTINGS_TABLE,
)
from spendstream.sinks.rerating import reprice
from spendstream.sinks.team_repeats import REFRESH_TEAM_REPEATS, TEAM_REPEATS_TABLE
from spendstream.worker.schema import MIGRATIONS, migrate
from tests.support.insight_data import START, generate
from tests.test_insight_cells import GPT_4O_CUT, PERIODS, TOTALS, write, written_before

pytestmark = pytest.mark.integration

NAMES = ("caching", "embeddings", "untagged")
SETTINGS = (
    InsightsSettings(batch_features=["nightly"]),
    # wide windows: most repeats count; required tags that miss often
    InsightsSettings(
        prompt_cache_window_s=86_400,
        paid_twice_window_s=3 * 86_400,
        required_tags={"*": ["team", "app", "user"]},
    ),
)
WINDOWS: tuple[dict[str, Any], ...] = (
    {},
    {"scope": (("model", "gpt-4o"),)},
    {"scope": (("provider", "openai"), ("model", "text-embedding-3-small"))},
    {"team_sql": "team IN {t:Array(String)}", "team_params": {"t": ["search"]}},
    {"scope": (("team", "growth"),)},
    {"scope": (("feature", "classify"), ("operation", "chat"))},
    # the team repeats (migration 71): a team and a model; a team under a team condition
    {"scope": (("team", "search"), ("model", "gpt-4o"))},
    {
        "scope": (("team", "growth"),),
        "team_sql": "team IN {t:Array(String)}",
        "team_params": {"t": ["search", "growth"]},
    },
    {"scope": (("app", "web"),)},
)
# caching's kinds read from the insight cells (migration 75), not from the sightings
CELL_KINDS = ("prompt_cache_realised", "response_cache")
# The scopes the sightings serve, as a filter (no scope; provider and model), a filter of the
# team repeats (a team; a team under a team condition) or a window over them (a team
# condition; a feature scope; windows past the horizon); the app scope reads the ledger either
# way. After the migration every window is compared; after later writes the tables are
# compared whole with their definition over the ledger (assert_sightings_in_step,
# assert_repeats_in_step) and the insights over one or two windows of each way they are read,
# in whole weeks, cut mid-hour and inside an hour, with the tight and the wide repeat windows.
LATER_WINDOWS = tuple(WINDOWS[i] for i in (0, 2, 3, 5, 4, 7))
FAST = (*PERIODS, (START + timedelta(hours=7, minutes=30), START + timedelta(hours=7, minutes=31)))


def shared_prompts(seed: int) -> list[UsageEvent]:
    """The classify prompts sent by another team too (a scope by team sees fewer repeats),
    some at the very same millisecond as each other (ties go by event id), embeddings
    without a hash, and calls without an app."""
    rng = random.Random(seed)
    events: list[UsageEvent] = []
    for i in range(1_500):
        moment = START + timedelta(seconds=rng.randrange(21 * 86_400), milliseconds=i % 7)
        common = {"provider": "openai", "event_time": moment, "input_tokens": 300 + i % 400}
        app = {"app": "x"} if i % 9 else {}
        chat = {
            **common,
            "model": "gpt-4o",
            "output_tokens": 20 + i % 50,
            "prompt_hash": f"a{rng.randrange(300):030x}",
            "tags": {"team": "growth", "feature": "classify", **app},
        }
        events.append(UsageEvent.model_validate(chat))
        if i % 25 == 0:  # the same request in the same millisecond
            events.append(UsageEvent.model_validate(chat))
        if i % 5 == 0:
            embedding = {
                **common,
                "model": "text-embedding-3-small",
                "operation": "embeddings",
                **({} if i % 3 else {"prompt_hash": f"c{rng.randrange(200):030x}"}),
                "tags": {"team": "growth", "feature": "search_embed"},
            }
            events.append(UsageEvent.model_validate(embedding))
    return events


# Written by the release before the repeats (migration 77), once the sightings were there, and
# by the release before the team repeats (migration 71).
BEFORE_REPEATS = shared_prompts(5)[:400]
BEFORE_TEAM_REPEATS = shared_prompts(6)[:400]
NEVER = datetime(1970, 1, 1)  # the previous time of a first sighting (read back naive, UTC)


def figures(
    client: Client,
    fast: bool,
    cells: bool = True,
    windows: tuple[dict[str, Any], ...] = WINDOWS,
    periods: tuple[tuple[datetime, datetime], ...] = FAST,
) -> list[Any]:
    """The insights and recommendations of every settings, period and window; without
    ``cells``, only the figures the sightings and rollups serve (not the insight cells')."""
    found: list[Any] = []
    for settings in SETTINGS:
        for since, until in periods:
            for window in windows:
                context = Context(
                    ClientReader(client),
                    default_pricer(),
                    settings,
                    Window(since, until, **window),
                    from_ledger=not fast,
                )
                for name in NAMES:
                    result = run_insight(name, context)
                    rows = [
                        r
                        for r in result.rows
                        if cells or r[3] not in CELL_KINDS or name != "caching"
                    ]
                    found.append((name, since, until, window, result.columns, rows))
                if cells and not window:  # built from the insights compared above, per scope
                    found.append(("recommendations", since, until, window, build(context, 21)))
    return found


def assert_fast_equal_ledger(
    client: Client,
    cells: bool = True,
    windows: tuple[dict[str, Any], ...] = WINDOWS,
    periods: tuple[tuple[datetime, datetime], ...] = FAST,
) -> None:
    fast = figures(client, True, cells, windows, periods)
    ledger = figures(client, False, cells, windows, periods)
    for got, expected in zip(fast, ledger, strict=True):
        assert got == expected, got[:4]
    # the reads compared saw repeats and untagged spend (the comparison is not of empties)
    caching = [row for found in ledger if found[0] == "caching" for row in found[-1]]
    assert {row[3] for row in caching} >= {"paid_twice", "prompt_cache_opportunity"}
    embedded = [row for found in ledger if found[0] == "embeddings" for row in found[-1]]
    assert any(row[6] for row in embedded)  # repeated_events
    assert any(found[-1] for found in ledger if found[0] == "untagged")
    assert_repeats_in_step(client)


def assert_sightings_in_step(client: Client) -> None:
    """The sightings (migration 76) hold one row per sighted event of ``ledger FINAL``, with its
    columns as they are now and the previous sighting of the same prompt and class on the same
    provider and model in (event_time, event_id) order (the epoch for none or no prompt):
    computed here in Python from the ledger."""
    order = "ORDER BY event_time, event_id"
    ledger = client.query(
        f"SELECT {prompt_sightings.NAMES} FROM ledger FINAL "
        f"WHERE prompt_hash != '' OR operation = 'embeddings' {order}"
    ).result_rows
    at = {name.strip(): index for index, name in enumerate(prompt_sightings.NAMES.split(","))}
    last: dict[tuple[Any, ...], Any] = {}
    expected = []
    for row in ledger:
        operation, priced, cached = (row[at[n]] for n in ("operation", "priced", "response_cached"))
        kind = 1 if operation == "embeddings" else 2 if priced and not cached else 3
        partition = (row[at["provider"]], row[at["model"]], row[at["prompt_hash"]], kind)
        previous = last.get(partition, NEVER) if row[at["prompt_hash"]] else NEVER
        last[partition] = row[at["event_time"]]
        expected.append((*row, previous))
    kept = client.query(
        f"SELECT {prompt_sightings.NAMES}, previous_time FROM {SIGHTINGS_TABLE} FINAL {order}"
    ).result_rows
    assert kept == expected
    assert any(row[-1] != NEVER for row in expected)  # the comparison is not of firsts only


def assert_repeats_in_step(client: Client) -> None:
    """The repeats (migration 77) hold exactly the sightings that repeat, as they are now."""
    columns = f"{KEY}, previous_time, priced, response_cached, cost_total"
    kept, expected = (
        client.query(
            f"SELECT {columns} FROM {table} FINAL WHERE {REPEATED} ORDER BY {KEY}"
        ).result_rows
        for table in (REPEATS_TABLE, SIGHTINGS_TABLE)
    )
    assert kept == expected
    assert any(row[2] for row in expected)  # the comparison is not of empties
    assert_team_repeats_in_step(client)


def assert_team_repeats_in_step(client: Client) -> None:
    """The team repeats (migration 71) hold exactly the sightings whose previous one of the same
    prompt, class and team is within the horizon (every embedding with a prompt), with that
    previous time: computed here in Python from ``ledger FINAL``."""
    ledger = client.query(
        f"SELECT {KEY}, team, operation, priced, response_cached FROM ledger FINAL "
        "WHERE prompt_hash != '' ORDER BY event_time, event_id"
    ).result_rows
    last: dict[tuple[Any, ...], Any] = {}
    expected = []
    for provider, model, hash_, moment, event_id, team, operation, priced, cached in ledger:
        kind = 1 if operation == "embeddings" else 2 if priced and not cached else 3
        partition = (provider, model, hash_, kind, team)
        previous = last.get(partition)
        last[partition] = moment
        close = previous is not None and moment - previous <= timedelta(seconds=REPEAT_HORIZON_S)
        if kind == 1 or close:
            expected.append((provider, model, hash_, moment, event_id, team, previous or NEVER))
    key = "provider, model, prompt_hash, event_time, event_id"
    kept = client.query(
        f"SELECT {key}, team, previous_time FROM {TEAM_REPEATS_TABLE} FINAL "
        "WHERE operation = 'embeddings' OR previous_time >= event_time - "
        f"toIntervalSecond({REPEAT_HORIZON_S}) ORDER BY {key}"
    ).result_rows
    assert kept == sorted(expected)
    assert {row[5] for row in expected if row[6] != NEVER} >= {"search", "growth"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A ledger written by the release before the sightings (no migrations 76 and 77, which is
    built on them, nor 71, which came later; no sightings, repeats or team repeats step)."""
    path: Path = tmp_path_factory.mktemp("prompt-sightings") / "clickhouse"
    events = [*generate(), *shared_prompts(3)]
    steps = (REFRESH_SIGHTINGS, REFRESH_REPEATS, REFRESH_TEAM_REPEATS)
    client = written_before(path, (71, 76, 77), steps, events)
    yield client
    client.close()


def test_migration_fills_the_sightings_from_a_ledger_written_before(client: Client) -> None:
    totals = client.query(TOTALS).result_rows
    # The release before the repeats: migration 76, and a batch written by its refresh steps.
    with_sightings = [m for m in MIGRATIONS if m.version not in (71, 77)]
    assert ledger_schema.migrate(client, with_sightings) == [76]
    assert client.query(TOTALS).result_rows == totals  # the ledger is untouched
    sighted = client.query(
        "SELECT count(), sum(cost_total) FROM ledger FINAL "
        "WHERE prompt_hash != '' OR operation = 'embeddings'"
    ).result_rows
    assert (
        client.query(f"SELECT count(), sum(cost_total) FROM {SIGHTINGS_TABLE} FINAL").result_rows
        == sighted
    )
    later = (REFRESH_REPEATS, REFRESH_TEAM_REPEATS)
    write(client, BEFORE_REPEATS, tuple(step for step in REFRESH_STEPS if step[1] not in later))
    totals = client.query(TOTALS).result_rows
    # The release before the team repeats: migration 77, and a batch written by its steps.
    assert ledger_schema.migrate(client, [m for m in MIGRATIONS if m.version != 71]) == [77]
    assert client.query(TOTALS).result_rows == totals
    steps = tuple(step for step in REFRESH_STEPS if step[1] != REFRESH_TEAM_REPEATS)
    write(client, BEFORE_TEAM_REPEATS, steps)
    totals = client.query(TOTALS).result_rows
    assert migrate(client) == [71]
    assert client.query(TOTALS).result_rows == totals
    assert_sightings_in_step(client)
    assert_fast_equal_ledger(client)
    assert migrate(client) == []


def test_batches_written_after_keep_the_sightings_equal(client: Client) -> None:
    migrate(client)
    # What the ledger holds so far depends on which of this module's tests ran before in this
    # process (under xdist, the migration test may have run in another one).
    before = client.query(TOTALS).result_rows[0][0]
    later = [*generate(seed=9)[:2500], *shared_prompts(4)[:800]]
    # time order shuffled across batches: a late batch moves the previous sighting of events
    # written before it
    random.Random(2).shuffle(later)
    write(client, later[:1500], REFRESH_STEPS)
    write(client, later[1000:], REFRESH_STEPS)  # 500 delivered again: counted once
    assert client.query(TOTALS).result_rows[0][0] == before + len(later)
    assert_sightings_in_step(client)
    assert_fast_equal_ledger(client, windows=LATER_WINDOWS, periods=PERIODS)


def test_a_re_rating_keeps_the_sightings_equal(client: Client) -> None:
    migrate(client)
    since = START + timedelta(days=2, hours=3)
    re_rated = reprice(
        client, Pricer(load_catalog(), [GPT_4O_CUT]), since, since + timedelta(days=6)
    )
    assert re_rated.changed
    assert_sightings_in_step(client)
    # The cells' figures too: the old price_ref's cells are emptied by the refresh.
    assert_fast_equal_ledger(client, windows=LATER_WINDOWS, periods=PERIODS)


def test_a_sighting_that_stops_repeating_leaves_the_repeats(client: Client) -> None:
    # Class 3 (unpriced or served from the app's cache): A (cached), B, C (cached), 40 min
    # apart, so C repeats B within the hour. Pricing the model moves B to class 2: C's previous
    # becomes A, 80 min back, and the repeats must no longer hold C as a repeat.
    migrate(client)
    moment = START + timedelta(days=20, hours=4)
    hash_ = "f" * 32
    common = {"provider": "openai", "model": "mystery-model", "prompt_hash": hash_}
    events = [
        UsageEvent.model_validate(
            {
                **common,
                "event_time": moment + timedelta(minutes=40 * i),
                "input_tokens": 100,
                "output_tokens": 5,
                "response_cached": i != 1,
            }
        )
        for i in range(3)
    ]
    write(client, events, REFRESH_STEPS)
    repeat = (
        f"SELECT count() FROM {REPEATS_TABLE} FINAL WHERE prompt_hash = '{hash_}' AND {REPEATED}"
    )
    assert client.query(repeat).result_rows == [(2,)]  # B and C
    priced = Override(
        name="mystery",
        provider="openai",
        model="mystery-model",
        input=Decimal(1),
        output=Decimal(2),
    )
    re_rated = reprice(
        client, Pricer(load_catalog(), [priced]), moment, moment + timedelta(hours=2)
    )
    assert re_rated.changed
    assert client.query(repeat).result_rows == [(0,)]
    assert_sightings_in_step(client)
    assert_repeats_in_step(client)
