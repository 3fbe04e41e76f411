"""The anomaly inbox: episodes with their state (open, acknowledged, resolved, dismissed), who
set it and when, and audited state changes. Shared by the API, the CLI and the dashboard.

A team-scoped caller sees an episode only when every team it is about is one of the caller's
(an episode of several or unknown teams is for every-team callers only), in the SQL itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from spendstream.anomalies import store
from spendstream.anomalies.episodes import (
    INBOX_STATES,
    Action,
    Episode,
    InboxState,
    InboxStatus,
    group_label,
    inbox_status,
)
from spendstream.auth.roles import Permission, Principal
from spendstream.errors import ForbiddenError, InputError, NotFoundError
from spendstream.sinks.access import Reader
from spendstream.sinks.params import Params, moment

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client


@dataclass(frozen=True)
class Entry:
    episode: Episode
    status: InboxStatus
    actions: tuple[Action, ...]

    def as_dict(self) -> dict[str, Any]:
        e = self.episode
        return {
            "episode_id": e.episode_id,
            "rule": e.rule,
            "group": group_label(e.group),
            "teams": list(e.teams),
            "started_at": e.started_at,
            "last_anomalous_at": e.last_anomalous_at,
            "ended_at": e.ended_at,
            "active": e.active,
            "expected_usd": e.expected_usd,
            "observed_usd": e.observed_usd,
            "peak_delta_usd": e.peak_delta_usd,
            "method": e.method,
            "drivers": list(e.drivers),
            "state": self.status.state,
            "state_by": self.status.by,
            "state_at": self.status.at,
            "history": [
                {"state": a.state, "by": a.actor, "at": a.at, "reason": a.reason}
                for a in self.actions
            ],
        }


def visible_sql(caller: Principal, params: Params) -> str:
    if caller.teams is None:
        return "1"
    params["scope_teams"] = sorted(caller.teams)
    return "notEmpty(teams) AND hasAll({scope_teams:Array(String)}, teams)"


def entries(
    reader: Reader,
    caller: Principal,
    since: datetime,
    states: set[str] | None = None,
    episode: str | None = None,
) -> list[Entry]:
    """The caller's episodes started since ``since`` (newest first), optionally only those in
    ``states`` or the one ``episode``."""
    params: Params = {}
    where = f"({visible_sql(caller, params)}) AND started_at >= {moment(params, since)}"
    if episode is not None:
        params["episode"] = episode
        where += " AND episode_id = {episode:String}"
    found = store.read_episodes(reader, where, params)
    actions = store.read_actions(reader, [e.episode_id for e in found])
    listed = [
        Entry(e, inbox_status(e, actions[e.episode_id]), tuple(actions[e.episode_id]))
        for e in found
    ]
    return [entry for entry in listed if states is None or entry.status.state in states]


def change_state(
    reader: Reader,
    client: Client,
    caller: Principal,
    episode_id: str,
    state: str,
    reason: str,
    now: datetime,
) -> Entry:
    """Set an episode's inbox state (operators and admins), audited in ``anomaly_actions``."""
    if state not in INBOX_STATES:
        raise InputError(f"state must be one of {', '.join(INBOX_STATES)}, not {state!r}")
    if not caller.can(Permission.OPERATE):
        raise ForbiddenError(
            f"token {caller.name!r} ({caller.role}) may not change anomaly states; "
            "an operator or admin token may"
        )
    epoch = datetime.fromtimestamp(0, now.tzinfo)
    found = entries(reader, caller, epoch, episode=episode_id)
    if not found:
        raise NotFoundError(f"no anomaly episode {episode_id[:64]!r} among your teams' episodes")
    entry = found[0]
    action = Action(episode_id, cast(InboxState, state), caller.name, reason, now)
    store.record_action(client, action, entry.status.state, str(caller.role))
    actions = (*entry.actions, action)
    return Entry(entry.episode, inbox_status(entry.episode, actions), actions)
