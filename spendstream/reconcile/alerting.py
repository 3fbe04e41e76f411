"""``reconciliation`` alerts: a cell whose invoice and estimate differ by more than the
configured percentage and amount, in either direction, through the alert outbox.

Once per day and cell: the alert id is ``alert_id("reconcile/<provider>/<account>/<model>",
"reconciliation", day)``; an id already stored is never created again (a corrected report
that changes the figures does not page twice), and the creation inserts carry ClickHouse dedup
tokens (:meth:`spendstream.notifications.outbox.Outbox.enqueue`). Delivery is the
``notifications.delivery.Dispatcher`` (the worker's, or ``reconcile alert --send``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from spendstream.config import ReconcileAlertSettings
from spendstream.logs import get_logger
from spendstream.money import format_usd
from spendstream.notifications.kinds import ReconciliationGap
from spendstream.notifications.outbox import Outbox
from spendstream.notifications.records import Notification, NotificationKind, alert_id
from spendstream.notifications.text import inert
from spendstream.periods import utc_now
from spendstream.reconcile.ledger_side import AccountMap
from spendstream.reconcile.variance import CellVariance, Variance

log = get_logger(__name__)

KIND: NotificationKind = "reconciliation"


def exceeds(v: Variance, rule: ReconcileAlertSettings) -> bool:
    """|difference| above ``rule.amount`` and above ``rule.percent`` % of the invoice."""
    gap = abs(v.difference)
    if gap <= rule.amount:
        return False
    return not v.invoiced_usd or gap * 100 > rule.percent * abs(v.invoiced_usd)


def cell_name(cell: CellVariance) -> str:
    _day, provider, label, model = cell.key
    return f"reconcile/{provider}/{label or 'unmapped'}/{model or 'other'}"


def render(cell: CellVariance, accounts: Mapping[str, AccountMap]) -> tuple[str, str]:
    day, provider, label, model = cell.key
    v = cell.variance
    verb = "under-estimate" if v.difference > 0 else "over-estimate"
    where = f"{inert(provider)} {inert(model or 'other')}"
    title = f"[spendstream] reconciliation {day.isoformat()}: we {verb} the {provider} bill"
    mapping = accounts.get(provider) or AccountMap({})
    percent = "-" if v.percent is None else f"{v.percent}%"
    lines = [
        f"**Reconciliation {day.isoformat()}: {where}: we {verb}**",
        f"Account: {inert(mapping.tags(label))}",
        f"Invoiced: {format_usd(v.invoiced_usd)}; our estimate: {format_usd(v.our_usd)}; "
        f"difference (invoiced - ours) {format_usd(v.difference)}, {percent} of the invoice",
        f"Tokens: invoiced {v.invoiced_tokens:,}, ours {v.our_tokens:,}",
        "Explained by: "
        f"price drift {format_usd(v.price_drift)}, tokens never seen {format_usd(v.never_seen)}, "
        f"unpriced events {format_usd(v.unpriced)}, hidden token types {format_usd(v.hidden)}, "
        f"unexplained {format_usd(v.unexplained)}",
        f"Details: spendstream reconcile report --since {day.isoformat()} --by model",
    ]
    return title, "\n".join(lines)


class ReconciliationAlerts:
    """Creates reconciliation alerts (and their outbox rows) for cells over the rule."""

    def __init__(
        self,
        store: Outbox,
        rule: ReconcileAlertSettings,
        accounts: Mapping[str, AccountMap],
    ) -> None:
        self.store = store
        self.rule = rule
        self.accounts = accounts

    def evaluate(
        self, cells: Sequence[CellVariance], now: datetime | None = None
    ) -> list[Notification]:
        """Record an alert for every cell over the rule that has none yet; return those."""
        now = now or utc_now()
        over = {self._id(cell): cell for cell in cells if exceeds(cell.variance, self.rule)}
        fresh = set(over) - self.store.existing_ids(sorted(over))
        created = []
        for identifier in sorted(fresh):
            alert = self.store.enqueue(self._record(identifier, over[identifier]), now)
            if alert is None:
                continue
            created.append(alert)
            log.info(
                "reconciliation alert created",
                alert_id=identifier,
                cell=alert.budget,
                difference=str(over[identifier].variance.difference),
            )
        return created

    def _id(self, cell: CellVariance) -> str:
        day = cell.key[0]
        return alert_id(cell_name(cell), KIND, datetime(day.year, day.month, day.day, tzinfo=UTC))

    def _record(self, identifier: str, cell: CellVariance) -> ReconciliationGap:
        day, v = cell.key[0], cell.variance
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        title, body = render(cell, self.accounts)
        return ReconciliationGap(
            notification_id=identifier,
            subject=cell_name(cell),
            channels=tuple(self.rule.channels),
            period_start=start,
            period_end=start + timedelta(days=1),
            title=title,
            body=body,
            provider=cell.key[1],
            invoiced_usd=v.invoiced_usd,
            our_usd=v.our_usd,
            percent=v.percent,
        )
