"""Insights: where each team can save, with exact figures from its own ledger (docs/insights.md).

Faust-free: SQL over ``ledger FINAL`` through a :class:`~spendstream.sinks.access.Reader`, plus
exact Decimal re-pricing at catalog list prices through :mod:`spendstream.pricing`.
"""

from spendstream.insights.base import Context, InsightError, InsightResult, Window, parse_scope
from spendstream.insights.registry import INSIGHTS, Insight, run_insight

__all__ = [
    "INSIGHTS",
    "Context",
    "Insight",
    "InsightError",
    "InsightResult",
    "Window",
    "parse_scope",
    "run_insight",
]
