"""The farm's Cloudflare settings as one checked value, and which zone a name is in.

No network here: ``sites.dns`` is the module that talks to Cloudflare. The
settings are read from ``sites.dns_settings`` (the environment) unless
django.conf.settings overrides them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Literal

from django.core.exceptions import ImproperlyConfigured, ValidationError

from farm.env import app_setting
from sites import dns_settings
from sites.domains import is_local_domain, normalise_domain

RecordType = Literal["A", "AAAA", "CNAME"]


def setting(name: str) -> Any:
    """A DNS or domain-claim setting (``sites/dns_settings.py``)."""
    return app_setting(name, dns_settings)


@dataclass(frozen=True)
class DnsConfig:
    api_token: str = field(repr=False)  # a secret: never in logs or tracebacks
    zones: tuple[str, ...]  # zone names the farm manages, e.g. ("example.com",)
    target: str  # an IPv4/IPv6 address (A/AAAA) or a host name (CNAME)
    proxied: bool = True
    base_url: str | None = None
    ttl: int = 1  # 1 = automatic

    def __post_init__(self) -> None:
        if not self.api_token:
            raise ValueError("DnsConfig needs an API token.")
        if not self.target:
            raise ValueError("DnsConfig needs a record target.")
        if not (self.ttl == 1 or 30 <= self.ttl <= 86400):
            raise ValueError(f"DNS TTL {self.ttl} must be 1 (automatic) or 30-86400 seconds.")


def managed_zones_from_settings() -> tuple[str, ...]:
    """The zones of ``CLOUDFLARE_ZONES``, normalised (whether or not a token is set)."""
    return tuple(_setting_domain("CLOUDFLARE_ZONES", zone) for zone in setting("CLOUDFLARE_ZONES"))


def zone_containing(domain: str, zones: tuple[str, ...]) -> str | None:
    """The longest of ``zones`` that ``domain`` is or lies under; None: none of them."""
    if is_local_domain(domain):
        return None
    matches = [
        zone
        for zone in (z.lower().rstrip(".") for z in zones)
        if domain == zone or domain.endswith("." + zone)
    ]
    return max(matches, key=len, default=None)


def dns_config_from_settings() -> DnsConfig | None:
    """The configured DNS, or None when no Cloudflare token is set (DNS is skipped)."""
    token: str = setting("CLOUDFLARE_API_TOKEN")
    if not token:
        return None
    raw_zones: list[str] = list(setting("CLOUDFLARE_ZONES"))
    raw_target: str = setting("CLOUDFLARE_RECORD_TARGET")
    if not raw_zones:
        raise ImproperlyConfigured(
            "CLOUDFLARE_API_TOKEN is set but CLOUDFLARE_ZONES is empty: "
            "list the zones the farm manages, e.g. CLOUDFLARE_ZONES=example.com."
        )
    if not raw_target.strip():
        raise ImproperlyConfigured(
            "CLOUDFLARE_API_TOKEN is set but CLOUDFLARE_RECORD_TARGET is empty: "
            "give the edge's IP address or host name that site records point at."
        )
    try:
        return DnsConfig(
            api_token=token,
            zones=tuple(_setting_domain("CLOUDFLARE_ZONES", zone) for zone in raw_zones),
            target=_setting_target(raw_target.strip()),
            proxied=bool(setting("CLOUDFLARE_PROXIED")),
            base_url=setting("CLOUDFLARE_BASE_URL") or None,
            ttl=int(setting("CLOUDFLARE_RECORD_TTL")),
        )
    except ValueError as exc:  # e.g. CLOUDFLARE_RECORD_TTL=5
        raise ImproperlyConfigured(f"Cloudflare DNS settings: {exc}") from exc


def _setting_domain(name: str, value: str) -> str:
    try:
        return normalise_domain(value)
    except ValidationError as exc:
        raise ImproperlyConfigured(
            f"{name}: {value!r} is not a domain name ({exc.message})."
        ) from exc


def _setting_target(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return _setting_domain("CLOUDFLARE_RECORD_TARGET", value)


def managed_zone_for(domain: str, config: DnsConfig) -> str | None:
    """The longest managed zone that ``domain`` is or lies under; None: not ours to touch."""
    return zone_containing(domain, config.zones)


def record_for_target(target: str) -> tuple[RecordType, str]:
    """The record type and content that point a name at ``target``."""
    try:
        address = ipaddress.ip_address(target)
    except ValueError:
        return "CNAME", target.lower().rstrip(".")
    return ("A" if address.version == 4 else "AAAA"), str(address)
