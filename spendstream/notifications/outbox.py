"""The outbox: reads and writes of the notification tables. Blocking (clickhouse-connect);
call from threads.

Producers call :meth:`Outbox.enqueue` with a typed record (:mod:`spendstream.notifications.kinds`);
budget evaluation calls :meth:`Outbox.put` with its rows. Either way one delivery row per channel
is written with the notification, and the dispatcher (:mod:`spendstream.notifications.delivery`)
sends them.

Write order on creation is deliveries first, then the alert: the dispatcher only sends
deliveries whose alert row exists, so a crash between the two inserts sends nothing, and the
re-evaluation after restart re-creates both (the deliveries' dedup token drops the repeat).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from clickhouse_connect.driver.client import Client

from spendstream.notifications.kinds import NotificationRecord
from spendstream.notifications.records import Delivery, DeliveryStatus, Notification, Silence
from spendstream.notifications.schema import ALERT_COLUMNS, DELIVERY_COLUMNS, SILENCE_COLUMNS
from spendstream.periods import utc_now
from spendstream.sinks.access import ClientReader, QueryResult
from spendstream.sinks.params import Params, moment
from spendstream.sinks.versions import next_version


class Outbox:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.reader = ClientReader(client)

    def _select(
        self, table: str, columns: Sequence[str], where: str, params: Params
    ) -> QueryResult:
        """Rows of ``table`` matching ``where`` (its values bound in ``params``)."""
        sql = f"SELECT {', '.join(columns)} FROM {table} FINAL WHERE {where}"
        return self.reader.query(sql, params)

    # --- alerts -------------------------------------------------------------------------
    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        rows = self.reader.query(
            "SELECT alert_id FROM alerts FINAL WHERE alert_id IN {ids:Array(String)}",
            {"ids": list(ids)},
        ).rows
        return {str(row[0]) for row in rows}

    def alert_states(self, ids: Sequence[str]) -> dict[str, str]:
        """The state of each stored alert among ``ids``."""
        if not ids:
            return {}
        result = self._select(
            "alerts", ("alert_id", "state"), "alert_id IN {ids:Array(String)}", {"ids": list(ids)}
        )
        return {str(row[0]): str(row[1]) for row in result.rows}

    def create(self, alert: Notification, deliveries: Sequence[Delivery]) -> None:
        """Insert an alert with its outbox rows; replays of the same alert are dropped."""
        if deliveries:
            self.client.insert(
                "alert_deliveries",
                [d.row() for d in deliveries],
                column_names=DELIVERY_COLUMNS,
                settings={"insert_deduplication_token": f"create-deliveries:{alert.alert_id}"},
            )
        self.client.insert(
            "alerts",
            [alert.row()],
            column_names=ALERT_COLUMNS,
            settings={"insert_deduplication_token": f"create-alert:{alert.alert_id}"},
        )

    def put(self, notification: Notification, now: datetime) -> None:
        """Store ``notification`` with one delivery per channel (``silenced`` ones are kept
        as history, never sent)."""
        status: DeliveryStatus = "silenced" if notification.state == "silenced" else "pending"
        deliveries = [
            Delivery(
                alert_id=notification.alert_id,
                channel=channel,
                budget=notification.budget,
                status=status,
                created_at=now,
                next_attempt_at=now,
                version=next_version(),
            )
            for channel in notification.channels
        ]
        self.create(notification, deliveries)

    def enqueue(
        self, record: NotificationRecord, now: datetime | None = None
    ) -> Notification | None:
        """Store ``record`` unless its id is already stored; the new row, or None (a repeat).

        Alert-once: the id is deterministic and the creation inserts carry dedup tokens, so a
        replay or a concurrent repeat is dropped (by this check or by ClickHouse)."""
        if self.existing_ids([record.notification_id]):
            return None
        now = now or utc_now()
        notification = record.row(now)
        self.put(notification, now)
        return notification

    def update_alerts(self, alerts: Sequence[Notification]) -> None:
        if alerts:
            self.client.insert("alerts", [a.row() for a in alerts], column_names=ALERT_COLUMNS)

    def alerts(self, where: str, params: Params) -> list[Notification]:
        result = self._select("alerts", ALERT_COLUMNS, where, params)
        return [Notification.from_row(result.columns, row) for row in result.rows]

    def latest(self, kind: str, budgets: Iterable[str]) -> dict[str, Notification]:
        """The most recently created alert of ``kind`` per budget among ``budgets``."""
        where = (
            "kind = {kind:String} AND budget IN {budgets:Array(String)} "
            "ORDER BY created_at DESC, alert_id DESC LIMIT 1 BY budget"
        )
        found = self.alerts(where, {"kind": kind, "budgets": list(budgets)})
        return {alert.budget: alert for alert in found}

    def firing(self, budgets: Iterable[str]) -> list[Notification]:
        where = "state = 'firing' AND budget IN {budgets:Array(String)}"
        return self.alerts(where, {"budgets": list(budgets)})

    # --- deliveries ---------------------------------------------------------------------
    def due_deliveries(
        self, now: datetime, group_wait: timedelta
    ) -> list[tuple[Delivery, Notification]]:
        """Pending deliveries whose retry time has come and whose alert exists, oldest first.

        New ones wait ``group_wait`` after creation so alerts firing together go out together.
        """
        params: Params = {}
        pending = self._select(
            "alert_deliveries",
            DELIVERY_COLUMNS,
            f"status = 'pending' AND next_attempt_at <= {moment(params, now)} "
            f"AND (attempts > 0 OR created_at <= {moment(params, now - group_wait)}) "
            "ORDER BY created_at, alert_id, channel",
            params,
        )
        deliveries = [Delivery.from_row(pending.columns, row) for row in pending.rows]
        if not deliveries:
            return []
        ids = sorted({d.alert_id for d in deliveries})
        found = self.alerts("alert_id IN {ids:Array(String)}", {"ids": ids})
        alerts = {a.alert_id: a for a in found}
        return [(d, alerts[d.alert_id]) for d in deliveries if d.alert_id in alerts]

    def delivery_counts(self, alert_ids: Sequence[str]) -> dict[str, int]:
        """How many outbox rows of ``alert_ids`` are in each status (pending, delivered, ...)."""
        if not alert_ids:
            return {}
        rows = self.reader.query(
            "SELECT status, count() FROM alert_deliveries FINAL "
            "WHERE alert_id IN {ids:Array(String)} GROUP BY status",
            {"ids": list(alert_ids)},
        ).rows
        return {str(status): int(count) for status, count in rows}

    def update_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            self.client.insert(
                "alert_deliveries", [d.row() for d in deliveries], column_names=DELIVERY_COLUMNS
            )

    # --- silences -----------------------------------------------------------------------
    def active_silences(self, now: datetime) -> dict[str, Silence]:
        params: Params = {}
        where = f"until > {moment(params, now)}"
        result = self._select("alert_silences", SILENCE_COLUMNS, where, params)
        silences = [Silence.from_row(result.columns, row) for row in result.rows]
        return {s.budget: s for s in silences}

    def has_subject(self, subject: str) -> bool:
        """Whether any notification about ``subject`` was stored (a run, a reconciliation cell:
        subjects no configuration lists)."""
        rows = self.reader.query(
            "SELECT 1 FROM alerts WHERE budget = {subject:String} LIMIT 1", {"subject": subject}
        ).rows
        return bool(rows)

    def put_silence(self, silence: Silence) -> None:
        self.client.insert("alert_silences", [silence.row()], column_names=SILENCE_COLUMNS)
