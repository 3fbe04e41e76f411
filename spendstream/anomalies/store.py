"""Reads and writes of the anomaly tables. Blocking (clickhouse-connect); call from threads.

Reads take any :class:`~spendstream.sinks.access.Reader` (the API's read-only pool, the CLI's
worker reader); writes take a writable client.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from spendstream.anomalies.episodes import Action, Episode, InboxState
from spendstream.anomalies.schema import ACTION_COLUMNS, EPISODE_COLUMNS
from spendstream.sinks.access import Reader

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

SELECT_EPISODES = f"SELECT {', '.join(EPISODE_COLUMNS)} FROM anomaly_episodes FINAL"


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _moment(value: datetime | None) -> datetime:
    moment = _utc(value)
    assert moment is not None
    return moment


def episode_row(episode: Episode) -> list[Any]:
    return [
        episode.episode_id,
        episode.rule,
        [key for key, _ in episode.group],
        [value for _, value in episode.group],
        list(episode.teams),
        episode.started_at,
        episode.last_anomalous_at,
        episode.ended_at,
        episode.expected_usd,
        episode.observed_usd,
        episode.peak_delta_usd,
        episode.method,
        list(episode.drivers),
        episode.detected_at,
        episode.version,
        episode.signal,
    ]


def episode_from(record: dict[str, Any]) -> Episode:
    return Episode(
        episode_id=record["episode_id"],
        rule=record["rule"],
        group=tuple(zip(record["group_keys"], record["group_values"], strict=True)),
        teams=tuple(record["teams"]),
        started_at=_moment(record["started_at"]),
        last_anomalous_at=_moment(record["last_anomalous_at"]),
        ended_at=_utc(record["ended_at"]),
        expected_usd=Decimal(record["expected_usd"]),
        observed_usd=Decimal(record["observed_usd"]),
        peak_delta_usd=Decimal(record["peak_delta_usd"]),
        method=record["method"],
        drivers=tuple(record["drivers"]),
        detected_at=_moment(record["detected_at"]),
        version=int(record["version"]),
        signal=record["signal"],
    )


def read_episodes(
    reader: Reader, where: str = "1", params: dict[str, Any] | None = None
) -> list[Episode]:
    sql = f"{SELECT_EPISODES} WHERE {where} ORDER BY started_at DESC, episode_id"
    return [episode_from(r) for r in reader.query(sql, params or {}).records()]


def active_episodes(reader: Reader, rule: str) -> list[Episode]:
    return read_episodes(reader, "rule = {rule:String} AND ended_at IS NULL", {"rule": rule})


def read_actions(reader: Reader, ids: Sequence[str]) -> dict[str, list[Action]]:
    """Every person's action on ``ids``, oldest first, per episode."""
    found: dict[str, list[Action]] = {episode_id: [] for episode_id in ids}
    if not ids:
        return found
    sql = (
        "SELECT episode_id, state, actor, reason, at FROM anomaly_actions "
        "WHERE episode_id IN {ids:Array(String)} ORDER BY at, state"
    )
    for r in reader.query(sql, {"ids": list(ids)}).records():
        found[r["episode_id"]].append(
            Action(r["episode_id"], r["state"], r["actor"], r["reason"], _moment(r["at"]))
        )
    return found


def open_episode(client: Client, episode: Episode) -> None:
    """Insert a new episode; a repeat of the same opening (same id) is dropped."""
    client.insert(
        "anomaly_episodes",
        [episode_row(episode)],
        column_names=EPISODE_COLUMNS,
        settings={"insert_deduplication_token": f"open-episode:{episode.episode_id}"},
    )


def update_episode(client: Client, episode: Episode) -> None:
    client.insert("anomaly_episodes", [episode_row(episode)], column_names=EPISODE_COLUMNS)


def record_action(client: Client, action: Action, previous: InboxState, role: str) -> None:
    """Append a person's state change to the audit log."""
    row = [action.episode_id, action.state, previous, action.actor, role, action.reason, action.at]
    client.insert("anomaly_actions", [row], column_names=ACTION_COLUMNS)
