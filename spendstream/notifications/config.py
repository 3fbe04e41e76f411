"""What delivery needs from the configuration (``[alerts]`` in the TOML file).

The channels and the retry schedule are written under ``[alerts]`` (kept for existing files);
:class:`~spendstream.alerts.config.AlertsConfig` satisfies :class:`DeliverySettings`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from spendstream.config.models import Duration, Strict


class DeliveryConfig(Strict):
    """Retry schedule: ``retry_initial`` doubling up to ``retry_max``; a delivery still failing
    after ``give_up_after`` is marked ``failed`` (it stays in the history). ``send_timeout``
    bounds the connection and the answer of one send (Apprise's ``cto``/``rto``); a delivery
    being sent is claimed for twice that plus 5 s (no other sender takes it meanwhile)."""

    retry_initial: Duration = timedelta(seconds=2)
    retry_max: Duration = timedelta(minutes=5)
    give_up_after: Duration = timedelta(hours=24)
    poll_every: Duration = timedelta(seconds=1)
    send_timeout: Duration = timedelta(seconds=15)


class DeliverySettings(Protocol):
    """The settings the dispatcher reads (``[alerts]``: channels and ``[alerts.delivery]``)."""

    @property
    def channels(self) -> dict[str, str]: ...
    @property
    def group_wait(self) -> timedelta: ...
    @property
    def slack_webhook_base(self) -> str | None: ...
    @property
    def delivery(self) -> DeliveryConfig: ...
