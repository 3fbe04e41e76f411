"""Advice: ranked recommendations in dollars a month, decisions on them, and the what-if.

Public surface: :class:`Advisor` (recommendations with
their state and realised savings), :func:`digest_advice` (the digest's savings lines),
:func:`simulate` (the what-if); the HTTP routes are :func:`spendstream.advice.http.advice_router`
(imported from there: FastAPI stays out of a command that only reads). Above ``insights``
(whose figures it ranks) and ``pricing``.
See docs/recommendations.md.
"""

from spendstream.advice.digest import digest_advice
from spendstream.advice.service import Advisor
from spendstream.advice.whatif import WhatIfRequest, simulate

__all__ = ["Advisor", "WhatIfRequest", "digest_advice", "simulate"]
