"""pyarrow is the ``export`` extra (``pip install 'spendstream[export]'``): only Parquet files
(the FOCUS export, FOCUS bills read by reconcile) need it, so nothing imports it at start-up."""

from __future__ import annotations

from spendstream.errors import InputError

INSTALL_HINT = "pip install 'spendstream[export]'"


def require_pyarrow(purpose: str) -> None:
    """Raise a clear :class:`InputError` naming the extra when pyarrow is not installed
    (``purpose`` says what wanted it, e.g. ``Parquet export``); import pyarrow after this."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise InputError(
            f"{purpose} needs pyarrow, which is not installed: {INSTALL_HINT} (or use CSV)"
        ) from None
