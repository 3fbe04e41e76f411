"""Every table of spendstream, as one explicit, ordered list of migrations.

Each part owns its tables (``sinks.migrations``, ``notifications.schema``); nothing registers
itself on import. This list is what ``spendstream migrate``, the worker and the tests apply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spendstream.advice import store as advice_schema
from spendstream.anomalies import schema as anomalies_schema
from spendstream.auth import schema as auth_schema
from spendstream.currency import store as currency_schema
from spendstream.insights import schema as insights_schema
from spendstream.leadership import schema as leadership_schema
from spendstream.notifications import schema as alerts_schema
from spendstream.quotas import schema as quotas_schema
from spendstream.reconcile import schema as reconcile_schema
from spendstream.sinks import (
    group_hash,
    insight_cells,
    minute_fanout,
    prompt_sightings,
    team_repeats,
)
from spendstream.sinks import migrations as ledger_schema
from spendstream.sinks import run_rollup as runs_schema

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

MIGRATIONS: tuple[ledger_schema.Migration, ...] = (
    *ledger_schema.MIGRATIONS,
    *insight_cells.MIGRATIONS,
    *prompt_sightings.MIGRATIONS,
    *team_repeats.MIGRATIONS,
    *runs_schema.MIGRATIONS,
    *minute_fanout.MIGRATIONS,
    *group_hash.MIGRATIONS,
    *leadership_schema.MIGRATIONS,
    *alerts_schema.MIGRATIONS,
    *auth_schema.MIGRATIONS,
    *reconcile_schema.MIGRATIONS,
    *quotas_schema.MIGRATIONS,
    *insights_schema.MIGRATIONS,
    *advice_schema.MIGRATIONS,
    *anomalies_schema.MIGRATIONS,
    *currency_schema.MIGRATIONS,
)


def migrate(client: Client, cluster: str | None = None) -> list[int]:
    """Apply every pending migration of :data:`MIGRATIONS` (rewritten for ``cluster`` when
    given: ``[clickhouse] cluster``); return the versions applied now."""
    return ledger_schema.migrate(client, MIGRATIONS, cluster)


__all__ = ["MIGRATIONS", "migrate"]
