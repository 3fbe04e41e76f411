"""Why an alert fired: Explain's sentence for the budget's scope, added to the alert text.

A spike compares its window with a window as long just before it (Explain compares totals, so
the two periods have the same length); every other alert compares the last 24 h with the same
24 h a week earlier (``spendstream.explain``). Explain failing (a scope
Explain cannot read exactly, ClickHouse refusing) never stops an alert: it goes out without it.
"""

from __future__ import annotations

from datetime import datetime

from spendstream.alerts.figures import BudgetFigures
from spendstream.explain import Scope, default_periods, explain
from spendstream.logs import get_logger
from spendstream.sinks.access import Reader

log = get_logger(__name__)


def why(reader: Reader, kind: str, figures: BudgetFigures, now: datetime) -> str | None:
    """Explain's one sentence (with its top drivers) for an alert of ``kind``, or None."""
    filters = figures.budget.scope_filters
    if any("*" in value for values in filters.values() for value in values):
        return None  # a glob scope: Explain filters by exact values
    w = figures.windows
    if kind == "spike":
        span = w.now - w.spike_start
        period, baseline = (w.spike_start, w.now), (w.spike_start - span, w.spike_start)
    else:
        period, baseline = default_periods(now)
    try:
        return explain(reader, Scope(filters), period, baseline).sentence
    except Exception as exc:  # the alert matters more than its explanation
        log.warning("explain failed for an alert", budget=figures.budget.name, error=str(exc))
        return None
