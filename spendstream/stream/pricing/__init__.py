"""Pricing: turn a usage event's tokens into an exact Decimal cost.

Public surface: :class:`Pricer` (``rate(event) -> Rating``, ``from_config(pricing)``,
``catalog_digest``), :class:`Rating`, :func:`default_pricer`, :class:`PricingError`, and the
``prices_app`` Typer app in :mod:`spendstream.stream.pricing.cli`.
"""

from spendstream.stream.pricing.catalog import PricingError
from spendstream.stream.pricing.rating import Pricer, Rating, default_pricer

__all__ = ["Pricer", "PricingError", "Rating", "default_pricer"]
