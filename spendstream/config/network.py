"""Host names, proxy and broker addresses in the configuration: their syntax, normalised once.

``[api] allowed_hosts`` lists names a request's ``Host`` header may carry (besides the bind
address and the loopback names); ``[api] trusted_proxies`` lists the addresses (or networks)
whose ``X-Forwarded-For`` / ``X-Forwarded-Proto`` headers are believed.
"""

from __future__ import annotations

import ipaddress
import re

ANY_HOST = "*"
# What the API always answers to, whatever is configured: these cannot be a rebinding target
# (a DNS-rebinding page's requests carry the attacker's own host name).
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# A DNS name (labels of letters, digits, '-', '_') or an IPv4 address; IPv6 is checked apart.
_LABEL = r"[a-z0-9_][a-z0-9_-]{0,62}"
_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


def host_name(text: str) -> str | None:
    """``text`` as a normalised host name (lower case, no trailing dot, IPv6 without
    brackets), or None when it is not a bare host name or address (a port, scheme, path or
    credentials make it None)."""
    name = text.strip().lower().removesuffix(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if ":" in name:
        try:
            return str(ipaddress.IPv6Address(name))
        except ValueError:
            return None
    return name if _NAME.match(name) else None


def allowed_host_names(configured: list[str], bind_host: str) -> frozenset[str] | None:
    """The host names requests may carry: ``configured`` plus the bind address and the
    loopback names; None (any) when ``configured`` holds ``"*"``."""
    if ANY_HOST in configured:
        return None
    names = {host_name(bind_host), *(host_name(name) for name in LOOPBACK_NAMES), *configured}
    return frozenset(name for name in names if name)


def check_allowed_hosts(values: list[str]) -> list[str]:
    """Normalised ``[api] allowed_hosts``; ValueError naming the first bad entry."""
    normalised = []
    for value in values:
        name = ANY_HOST if value.strip() == ANY_HOST else host_name(value)
        if name is None:
            raise ValueError(
                f"{value!r} is not a host name or address: write names without scheme or "
                "port, e.g. ['spend.example.com', '10.0.0.5'], or ['*'] to answer any Host"
            )
        normalised.append(name)
    return normalised


def check_trusted_proxies(values: list[str]) -> list[str]:
    """Normalised ``[api] trusted_proxies`` (addresses or networks); ValueError naming the
    first bad entry."""
    normalised = []
    for value in values:
        try:
            normalised.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IP address or network: list the proxies in front of the "
                "API, e.g. ['127.0.0.1', '10.0.0.0/8'] (empty: believe no X-Forwarded-* header)"
            ) from None
    return normalised


def check_brokers(value: str) -> str:
    """``[kafka] bootstrap_servers``: ``host:port[,host:port...]``, spaces dropped. An empty
    entry (an unset shell variable, say) would have the client look up ``:9092`` and retry
    for ever, printing a warning a second."""
    entries = [entry.strip() for entry in value.split(",")]
    for entry in entries:
        host, colon, port = entry.rpartition(":")
        if not (colon and host and port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(
                f"{entry!r} is not host:port: write host:port[,host:port...], "
                "e.g. 127.0.0.1:9092 (spendstream dev prints its broker's)"
            )
    return ",".join(entries)
