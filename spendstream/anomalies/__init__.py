"""Seasonal anomaly detection on spend (``[[anomalies]]``, docs/anomalies.md).

Public API:

- :func:`load_anomalies`, :class:`AnomalyRule` — the validated rules.
- :class:`AnomalyDetector` — evaluates each completed hour; the alert service runs it.
- :func:`spendstream.anomalies.http.anomalies_router` — the inbox API (imported from there:
  FastAPI stays out of what only reads); :mod:`spendstream.anomalies.inbox` its logic.
- :func:`baseline_of`, :func:`judge`, :func:`step` — the pure core (the benchmark uses it).
"""

from __future__ import annotations

from spendstream.anomalies.baseline import Baseline, Verdict, baseline_of, judge
from spendstream.anomalies.config import INTERVAL, AnomalyRule, load_anomalies
from spendstream.anomalies.detector import AnomalyDetector
from spendstream.anomalies.episodes import Episode, step

__all__ = [
    "INTERVAL",
    "AnomalyDetector",
    "AnomalyRule",
    "Baseline",
    "Episode",
    "Verdict",
    "baseline_of",
    "judge",
    "load_anomalies",
    "step",
]
