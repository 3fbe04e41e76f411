"""Silencing an anomaly rule for a while: its notices are then recorded as ``silenced`` and
sent nowhere (the episodes, the inbox and the detection go on).

The silence itself is a budget silence (:func:`spendstream.alerts.silences.record_silence`,
table ``alert_silences``, keyed by the rule's name, which no budget shares); the dispatcher
and the detector honour it as they do for budgets. Operators and admins only, and only for a
rule whose scope lies inside the caller's teams; every silence and unsilence is appended to
``anomaly_rule_actions`` (migration 1003): who, with which role, why, until when.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from spendstream.alerts.silences import SilenceRequest, record_silence
from spendstream.anomalies.config import AnomalyRule
from spendstream.anomalies.schema import RULE_ACTION_COLUMNS
from spendstream.auth.roles import Permission, Principal
from spendstream.auth.scope import sees_scope
from spendstream.errors import ForbiddenError, NotFoundError
from spendstream.notifications.outbox import Outbox
from spendstream.notifications.records import Silence

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client


def rule_for(rules: Sequence[AnomalyRule], caller: Principal, name: str) -> AnomalyRule:
    """The rule named ``name`` that ``caller`` may see (NotFoundError otherwise: a rule of
    another team is not told apart from none)."""
    for rule in rules:
        if rule.name == name and sees_scope(caller, rule.scope_filters):
            return rule
    known = ", ".join(r.name for r in rules if sees_scope(caller, r.scope_filters)) or "none"
    raise NotFoundError(f"no anomaly rule named {name[:80]!r} in your teams (rules: {known})")


def silence_rule(
    client: Client,
    rules: Sequence[AnomalyRule],
    caller: Principal,
    request: SilenceRequest,
    now: datetime,
) -> Silence:
    """Silence (or unsilence) ``request.budget``, an anomaly rule's name, as ``caller``."""
    if not caller.can(Permission.OPERATE):
        raise ForbiddenError(
            f"token {caller.name!r} ({caller.role}) may not silence anomaly rules; "
            "an operator or admin token may"
        )
    rule = rule_for(rules, caller, request.budget)
    silence = record_silence(Outbox(client), request.model_copy(update={"by": caller.name}), now)
    row = [rule.name, request.action, silence.until, caller.name, str(caller.role)]
    client.insert(
        "anomaly_rule_actions", [[*row, request.reason, now]], column_names=RULE_ACTION_COLUMNS
    )
    return silence
