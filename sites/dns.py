"""Cloudflare DNS: the one module that talks to Cloudflare, through its official SDK.

A site's domain gets exactly one A, AAAA or CNAME record pointing at the farm's
edge (``DnsConfig.target``). Every call looks at what is in the zone first, so
running a step twice is harmless: ``upsert_record`` creates, fixes or leaves the
record alone and says which; ``delete_records`` deletes whatever is there.

Every SDK or transport error leaves this module as ``DnsError`` with a message
for people (including Cloudflare's own error text and code) and whether trying
again can help. The SDK already retries 408/409/429/5xx and connection errors
``max_retries`` times, honouring ``Retry-After``; what still fails is reported.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

import cloudflare
from cloudflare import Cloudflare
from cloudflare.pagination import SyncV4PagePaginationArray
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError

from sites.dns_errors import DnsError, translated
from sites.domains import is_local_domain, normalise_domain

RecordType = Literal["A", "AAAA", "CNAME"]
RecordAction = Literal["created", "updated", "unchanged"]
SITE_RECORD_TYPES: tuple[RecordType, ...] = ("A", "AAAA", "CNAME")

DEFAULT_MAX_RETRIES = 2
DEFAULT_TIMEOUT_SECONDS = 30.0
# Cloudflare's default page size for DNS records; one request covers a normal name.
DEFAULT_PER_PAGE = 100
ZONES_PER_PAGE = 50  # the API's maximum for GET /zones


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


@dataclass(frozen=True)
class DnsRecord:
    id: str
    name: str
    type: str
    content: str
    proxied: bool
    ttl: int


@dataclass(frozen=True)
class RecordResult:
    action: RecordAction
    record: DnsRecord
    # Records of the same name that had to go: another type, or extra A/AAAA
    # records that would send part of the traffic somewhere else.
    removed: tuple[DnsRecord, ...] = ()


def dns_config_from_settings() -> DnsConfig | None:
    """The configured DNS, or None when no Cloudflare token is set (DNS is skipped)."""
    token: str = getattr(settings, "CLOUDFLARE_API_TOKEN", "")
    if not token:
        return None
    raw_zones: list[str] = list(getattr(settings, "CLOUDFLARE_ZONES", []))
    raw_target: str = getattr(settings, "CLOUDFLARE_RECORD_TARGET", "")
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
            proxied=bool(getattr(settings, "CLOUDFLARE_PROXIED", True)),
            base_url=getattr(settings, "CLOUDFLARE_BASE_URL", "") or None,
            ttl=int(getattr(settings, "CLOUDFLARE_RECORD_TTL", 1)),
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
    if is_local_domain(domain):
        return None
    matches = [
        zone
        for zone in (z.lower().rstrip(".") for z in config.zones)
        if domain == zone or domain.endswith("." + zone)
    ]
    return max(matches, key=len, default=None)


def record_for_target(target: str) -> tuple[RecordType, str]:
    """The record type and content that point a name at ``target``."""
    try:
        address = ipaddress.ip_address(target)
    except ValueError:
        return "CNAME", target.lower().rstrip(".")
    return ("A" if address.version == 4 else "AAAA"), str(address)


class CloudflareDns:
    """Site records in the farm's Cloudflare zones. Not thread-safe: one per task."""

    def __init__(
        self,
        config: DnsConfig,
        *,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        per_page: int = DEFAULT_PER_PAGE,
    ) -> None:
        self.config = config
        self.per_page = per_page
        self._zone_ids: dict[str, str] = {}
        self._client = Cloudflare(
            api_token=config.api_token,
            base_url=config.base_url,
            max_retries=max_retries,
            timeout=timeout,
        )
        # The SDK also picks up CLOUDFLARE_API_KEY / CLOUDFLARE_EMAIL from the
        # environment and prefers them to the token; the farm uses its token only.
        self._client.api_key = None
        self._client.api_email = None
        self._client.user_service_key = None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- reading -------------------------------------------------------------

    def zone_id(self, zone_name: str) -> str:
        """Cloudflare's id for a zone the token can see, looked up by name once."""
        if zone_name not in self._zone_ids:
            with translated(f"look up the zone {zone_name}"):
                first = self._client.zones.list(name=zone_name, per_page=ZONES_PER_PAGE)
                ids = [z.id for z in _all_items(first, ZONES_PER_PAGE) if z.name == zone_name]
            if not ids:
                raise DnsError(
                    f"Cloudflare has no zone named {zone_name} that this API token can see: "
                    "check CLOUDFLARE_ZONES and the token's zone resources.",
                    retryable=False,
                )
            self._zone_ids[zone_name] = ids[0]
        return self._zone_ids[zone_name]

    def find_records(self, domain: str) -> list[DnsRecord]:
        """The A, AAAA and CNAME records named exactly ``domain``."""
        return self._find(self._zone_id_for(domain), domain)

    # ---- changing ------------------------------------------------------------

    def upsert_record(self, domain: str) -> RecordResult:
        """Make ``domain`` point at the target with exactly one record; idempotent."""
        zone_id = self._zone_id_for(domain)
        wanted_type, wanted_content = record_for_target(self.config.target)
        existing = self._find(zone_id, domain)
        keeper = self._choose_keeper(existing, wanted_type)
        others = tuple(r for r in existing if keeper is None or r.id != keeper.id)
        # Others go first: Cloudflare refuses an A record beside a CNAME (81054)
        # and a CNAME beside anything (81053).
        for record in others:
            self._delete(zone_id, record)
        if keeper is None:
            created = self._create(zone_id, domain, wanted_type, wanted_content)
            # Replacing another type changes what an existing name points at.
            return RecordResult("updated" if others else "created", created, others)
        if self._is_right(keeper):
            return RecordResult("updated" if others else "unchanged", keeper, others)
        edited = self._edit(zone_id, keeper, wanted_type, wanted_content)
        return RecordResult("updated", edited, others)

    def delete_records(self, domain: str) -> int:
        """Delete the A, AAAA and CNAME records of ``domain``; how many went (0 if none)."""
        zone_id = self._zone_id_for(domain)
        return sum(self._delete(zone_id, record) for record in self._find(zone_id, domain))

    # ---- internals -------------------------------------------------------------

    def _zone_id_for(self, domain: str) -> str:
        zone = managed_zone_for(domain, self.config)
        if zone is None:
            raise DnsError(
                f"{domain} is not in a zone the farm manages "
                f"({', '.join(self.config.zones)}); its DNS is not ours to change.",
                retryable=False,
            )
        return self.zone_id(zone)

    def _find(self, zone_id: str, domain: str) -> list[DnsRecord]:
        # One type filter per request is all the API takes, so filter by name
        # only and keep the three site types here.
        with translated(f"list the DNS records of {domain}"):
            first = self._client.dns.records.list(
                zone_id=zone_id, name={"exact": domain}, per_page=self.per_page
            )
            found = [_record(r) for r in _all_items(first, self.per_page)]
        # Name filters are case-insensitive on Cloudflare's side; be exact here.
        return [r for r in found if r.type in SITE_RECORD_TYPES and r.name == domain]

    def _choose_keeper(self, existing: list[DnsRecord], wanted_type: str) -> DnsRecord | None:
        same_type = [r for r in existing if r.type == wanted_type]
        right = [r for r in same_type if self._is_right(r)]
        candidates = right or same_type
        return candidates[0] if candidates else None

    def _is_right(self, record: DnsRecord) -> bool:
        wanted_type, wanted_content = record_for_target(self.config.target)
        if record.type != wanted_type or record.proxied != self.config.proxied:
            return False
        if _comparable(record.type, record.content) != wanted_content:
            return False
        # Cloudflare serves proxied records with automatic TTL whatever was sent.
        return self.config.proxied or record.ttl == self.config.ttl

    def _create(self, zone_id: str, domain: str, rtype: RecordType, content: str) -> DnsRecord:
        with translated(f"create the {rtype} record for {domain}"):
            created = self._client.dns.records.create(
                zone_id=zone_id,
                name=domain,
                type=rtype,
                content=content,
                proxied=self.config.proxied,
                ttl=self.config.ttl,
            )
        return _required(created, f"creating the record for {domain}")

    def _edit(self, zone_id: str, record: DnsRecord, rtype: RecordType, content: str) -> DnsRecord:
        with translated(f"update the {rtype} record for {record.name}"):
            edited = self._client.dns.records.edit(
                record.id,
                zone_id=zone_id,
                name=record.name,
                type=rtype,
                content=content,
                proxied=self.config.proxied,
                ttl=self.config.ttl,
            )
        return _required(edited, f"updating the record for {record.name}")

    def _delete(self, zone_id: str, record: DnsRecord) -> int:
        """1 if deleted, 0 if it was already gone (someone else deleted it meanwhile)."""
        with translated(f"delete the {record.type} record for {record.name}"):
            try:
                self._client.dns.records.delete(record.id, zone_id=zone_id)
            except cloudflare.NotFoundError:
                return 0
        return 1


def _all_items[T](first: SyncV4PagePaginationArray[T], per_page: int) -> Iterator[T]:
    """Every item of every page.

    The SDK's own iteration asks for pages until one comes back empty; a page
    shorter than the page size is already the last, which saves a request.
    """
    page = first
    while True:
        yield from page.result
        served_per_page = (page.result_info.per_page if page.result_info else None) or per_page
        if len(page.result) < served_per_page or not page.has_next_page():
            return
        page = page.get_next_page()


def _record(sdk_record: Any) -> DnsRecord:
    # The SDK returns a union of 21 record models; they share these fields.
    return DnsRecord(
        id=sdk_record.id,
        name=sdk_record.name,
        type=sdk_record.type,
        content=sdk_record.content or "",
        proxied=bool(sdk_record.proxied),
        ttl=int(sdk_record.ttl),
    )


def _required(sdk_record: Any, doing: str) -> DnsRecord:
    if sdk_record is None:
        raise DnsError(f"Cloudflare answered {doing} without the record.", retryable=True)
    return _record(sdk_record)


def _comparable(rtype: str, content: str) -> str:
    """Content as record_for_target writes it (canonical IPs, lower-case host names)."""
    if rtype in ("A", "AAAA"):
        try:
            return str(ipaddress.ip_address(content))
        except ValueError:
            return content
    return content.lower().rstrip(".")
