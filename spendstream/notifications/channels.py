"""Sending one message to a named channel through Apprise (``[alerts.channels]``: name → URL).

Every send is bounded: the channel URL gets Apprise's own ``cto``/``rto`` (connect and read
timeouts, public URL parameters) from ``[alerts.delivery] send_timeout`` unless it sets them.
Webhook channels (``json://``, ``xml://``, ``form://`` and their ``s`` variants) also get an
``Idempotency-Key`` header (Apprise's ``+Header=value`` URL syntax): the same key on every
attempt at the same notifications, so a receiver that deduplicates on it sees one message even
when an answer was lost and we sent again. Slack and e-mail have no such key.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import apprise
from apprise import NotifyBase
from apprise.plugins.slack import NotifySlack

from spendstream.config import redact_text, url_secrets
from spendstream.notifications.config import DeliverySettings

SendResult = tuple[bool, str]
KEYED_SCHEMES = ("json", "jsons", "xml", "xmls", "form", "forms")


def with_parameters(url: str, parameters: dict[str, str]) -> str:
    """``url`` with ``parameters`` added to its query (those it already sets are kept)."""
    query = url.partition("?")[2]
    present = {part.partition("=")[0] for part in query.split("&") if part}
    extra = [f"{quote(k, safe='+')}={quote(v)}" for k, v in parameters.items() if k not in present]
    if not extra:
        return url
    return url + ("&" if "?" in url else "?") + "&".join(extra)


def slack_relay(base: str) -> type[NotifySlack]:
    """Apprise's Slack plugin posting to ``base`` (a Slack-compatible relay, and tests).

    Apprise has no URL parameter for the endpoint: it is the plugin's class attribute
    ``webhook_url``. A subclass overriding it (built from the URL by the plugin's public
    ``parse_url``) changes nothing after construction and no other Slack channel."""
    return type("SlackRelay", (NotifySlack,), {"webhook_url": base.rstrip("/")})


class Notifier:
    """Sends a message to a named channel."""

    def __init__(self, config: DeliverySettings) -> None:
        self.config = config

    def url(self, channel: str, key: str = "") -> str:
        """The channel's Apprise URL with the send timeouts (and the idempotency key)."""
        url = self.config.channels[channel]
        seconds = f"{self.config.delivery.send_timeout.total_seconds():g}"
        parameters = {"cto": seconds, "rto": seconds}
        if key and url.split("://", 1)[0].lower() in KEYED_SCHEMES:
            parameters["+Idempotency-Key"] = key
        return with_parameters(url, parameters)

    def plugin(self, channel: str, key: str = "") -> apprise.Apprise:
        url = self.url(channel, key)
        base = self.config.slack_webhook_base
        instance: NotifyBase | None
        if base and url.startswith("slack://"):
            arguments = NotifySlack.parse_url(url)
            instance = slack_relay(base)(**arguments) if arguments else None
        else:
            instance = apprise.Apprise.instantiate(url)
        if instance is None:
            raise ValueError(f"channel {channel!r}: invalid Apprise URL")
        sender = apprise.Apprise()
        sender.add(instance)
        return sender

    def send(self, channel: str, title: str, body: str, key: str = "") -> SendResult:
        """Send once; returns ``(ok, error text)`` with Apprise's own warnings as the error."""
        try:
            sender = self.plugin(channel, key)
        except (KeyError, ValueError) as exc:
            return False, str(exc)
        with apprise.LogCapture(level=logging.WARNING) as captured:
            ok = sender.notify(body=body, title=title, body_format=apprise.NotifyFormat.MARKDOWN)
            errors = captured.getvalue().strip()
        if ok:
            return True, ""
        # Apprise's warnings may quote the channel URL: stored and logged without its secrets.
        secrets = url_secrets(self.config.channels[channel], address=False)
        return False, redact_text(errors or "apprise reported failure", secrets)[-500:]
