"""Pricing: turn a usage event's tokens into an exact Decimal cost.

Public surface: :class:`Pricer` (``rate(event) -> Rating``, ``from_config(pricing)``,
``catalog_digest``), :class:`Rating`, :func:`default_pricer`, :class:`PricingError`
and :func:`load_pricer`. Free of Faust and ClickHouse; the ``spendstream prices`` commands live in
:mod:`spendstream.cli.prices`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spendstream.pricing.catalog import PricingError
from spendstream.pricing.rating import Pricer, Rating, default_pricer

if TYPE_CHECKING:
    from spendstream.config import Settings


def load_pricer(settings: Settings) -> Pricer:
    """The configured pricer: the shipped catalog plus any ``[pricing]`` overrides.

    Raises :class:`spendstream.config.ConfigError` for an invalid ``[pricing]`` table.
    """
    if settings.pricing:
        return Pricer.from_config(settings.pricing, base_dir=settings.base_dir)
    return default_pricer()


__all__ = ["Pricer", "PricingError", "Rating", "default_pricer", "load_pricer"]
