"""The address of the person making a request, as every part of the panel sees it.

Behind Traefik the TCP peer (``REMOTE_ADDR``) is the proxy, so the client is in
``X-Forwarded-For``. That header is only believed when the peer is one of
FARM_TRUSTED_PROXIES: each trusted proxy appends the address it got the
request from, so walking the header from the right, the first address that is
not a trusted proxy is the client. Anything to the left of it was written by
the client itself and is ignored (it can say anything).

allauth's login throttling (through ``farm.adapters``) and the audit log both
ask this one function, so a locked-out address is the one the audit log shows.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(values: Iterable[str], *, setting: str = "FARM_TRUSTED_PROXIES") -> list[str]:
    """Check CIDRs (or single addresses) of a setting; return them normalised."""
    networks = []
    for value in values:
        try:
            networks.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{setting}: {value!r} is not an IP network (use CIDRs like 10.0.0.0/8)."
            ) from exc
    return networks


@cache
def _networks(values: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


def _address(raw: str) -> Address | None:
    raw = raw.strip()
    if raw.startswith("[") and "]" in raw:  # [v6] or [v6]:port
        raw = raw[1 : raw.index("]")]
    elif raw.count(":") == 1:  # v4:port
        raw = raw.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address, or None when there is no request or no usable peer."""
    if request is None:
        return None
    peer = _address(str(request.META.get("REMOTE_ADDR") or ""))
    if peer is None:
        return None
    networks = _networks(tuple(settings.FARM_TRUSTED_PROXIES))
    if not _trusted(peer, networks):
        return str(peer)  # a direct client: whatever headers it sent are its own words
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR") or "")
    nearest = peer
    for hop in reversed([h for h in forwarded.split(",") if h.strip()]):
        address = _address(hop)
        if address is None:
            break  # garbage where a proxy writes addresses: stop at the last one we trust
        if not _trusted(address, networks):
            return str(address)
        nearest = address
    return str(nearest)
