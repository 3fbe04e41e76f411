"""Pricing: turn a usage event's tokens into an exact Decimal cost.

Public surface: :class:`Pricer` (``rate(event) -> Rating``) and :func:`default_pricer`.
"""

from spendstream.stream.pricing.rating import Pricer, Rating, default_pricer

__all__ = ["Pricer", "Rating", "default_pricer"]
