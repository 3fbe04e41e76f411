"""Advice: ranked recommendations in dollars a month, decisions on them, and the what-if.

Public surface: :func:`advice_router` (the HTTP routes), :class:`Advisor` (recommendations with
their state and realised savings), :func:`digest_advice` (the digest's savings lines),
:func:`simulate` (the what-if). Above ``insights`` (whose figures it ranks) and ``pricing``.
See docs/recommendations.md.
"""

from spendstream.advice.digest import digest_advice
from spendstream.advice.http import advice_router
from spendstream.advice.service import Advisor
from spendstream.advice.whatif import WhatIfRequest, simulate

__all__ = ["Advisor", "WhatIfRequest", "advice_router", "digest_advice", "simulate"]
